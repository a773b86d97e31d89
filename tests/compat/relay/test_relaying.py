"""Faithful relaying: the channel's key and mapped model, every file and field of an edit, JSON edits,
URL results and usage-based billing."""

from __future__ import annotations

import base64
import io
import json

import httpx
from PIL import Image

from tests.compat.relay.harness import (
    CHANNEL_PRICES,
    PRIMARY_KEY,
    UPSTREAM_COST,
    Admin,
    b64,
    generate,
    priced,
    record,
    sdk,
    spent_micros,
)
from tests.conftest import LiveServer
from tests.fakes.upstream import USAGE, FakeUpstream, noise_png, tiny_png
from tests.imaging import mask_png, png


def test_generation_carries_the_channel_key_the_mapped_model_and_is_billed_from_upstream_usage(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    channel = admin.add(
        "gen", primary, PRIMARY_KEY, model_map={"gpt-image-1": "provider-image-v2"}, prices=CHANNEL_PRICES
    )
    secret = gateway.new_key("relay-gen")
    with sdk(gateway, secret) as client:
        result, request_id = generate(
            client, n=2, background="opaque", output_format="png", moderation="low", user="user-42"
        )
    [post] = primary.posts("/images/generations")
    assert post.bearer == PRIMARY_KEY and secret not in json.dumps(post.headers)
    assert post.headers["content-type"] == "application/json"
    assert post.json() == {
        "model": "provider-image-v2",
        "prompt": "a red fox in a blue forest",
        "quality": "medium",
        "size": "1024x1024",
        "n": 2,
        "background": "opaque",
        "output_format": "png",
        "moderation": "low",
        "user": "user-42",
    }
    assert result.data and [b64(d.b64_json) for d in result.data] == [tiny_png(0), tiny_png(1)]
    for i, item in enumerate(result.data):  # stored here: our own signed URLs serve the bytes
        assert item.url and httpx.get(item.url).content == tiny_png(i)
    assert result.usage and result.usage.output_tokens == 272 and result.usage.input_tokens == 10
    assert spent_micros(gateway, secret) == UPSTREAM_COST
    rec = record(gateway, request_id)
    assert (rec["channel"], rec["engine"], rec["status"], rec["images"]) == (
        channel["name"],
        f"upstream:{channel['name']}",
        200,
        2,
    )
    assert (rec["text_in"], rec["image_in"], rec["image_out"]) == (10, 0, 272)
    assert rec["cost_micros"] == UPSTREAM_COST and rec["attempts"] == 1
    assert rec["upstream_cost_micros"] == priced(USAGE, 4, 8, 30)  # the operator's cost, its own prices


def test_multipart_edit_relays_every_file_and_field_as_the_upstream_expects(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("edit", primary, PRIMARY_KEY, model_map={"gpt-image-1": "provider-edit-v2"})
    first, second, mask = png(64, 64, seed=1), png(48, 32, seed=2), mask_png(64, 64, (0, 0, 32, 32))
    secret = gateway.new_key("relay-edit")
    with sdk(gateway, secret) as client:
        result = client.images.edit(
            model="gpt-image-1",
            image=[("first.png", first, "image/png"), ("second.png", second, "image/png")],
            mask=("mask.png", mask, "image/png"),
            prompt="add snow",
            n=1,
            quality="high",
            size="1024x1024",
            output_format="webp",
            output_compression=50,
            input_fidelity="high",
            stream=False,
        )
    [post] = primary.posts("/images/edits")
    assert post.is_multipart and post.bearer == PRIMARY_KEY
    assert post.fields() == {
        "model": ["provider-edit-v2"],
        "prompt": ["add snow"],
        "n": ["1"],
        "quality": ["high"],
        "size": ["1024x1024"],
        "output_format": ["webp"],
        "output_compression": ["50"],
        "input_fidelity": ["high"],
        "stream": ["false"],
    }
    assert [(f.name, f.filename, f.data, f.content_type) for f in post.files()] == [
        ("image[]", "first.png", first, "image/png"),
        ("image[]", "second.png", second, "image/png"),
        ("mask", "mask.png", mask, "image/png"),
    ]
    assert "content-length" in post.headers  # a sized body, not chunked: some providers refuse those
    # The fake answers a PNG whatever it is asked: converted to the WebP asked for (adapt.py).
    assert result.data and b64(result.data[0].b64_json)[:4] == b"RIFF"
    relayed = Image.open(io.BytesIO(b64(result.data[0].b64_json))).convert("RGB")
    assert relayed.size == Image.open(io.BytesIO(tiny_png(0))).size
    assert spent_micros(gateway, secret) == UPSTREAM_COST


def test_a_large_upload_is_streamed_from_its_temporary_file_byte_for_byte(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    """3 MB: over the 1 MiB that the multipart parser keeps in memory, so the relayed part is read
    from the spooled file on disk. Sent as application/octet-stream (as the SDK sends raw bytes);
    the upstream gets the media type sniffed from the bytes."""
    admin.add("large", primary, PRIMARY_KEY)
    image = noise_png(1000, 1000, seed=5)
    assert len(image) > 2_900_000
    secret = gateway.new_key("relay-large")
    resp = httpx.post(
        gateway.api_base + "/images/edits",
        headers={"Authorization": f"Bearer {secret}"},
        data={"model": "gpt-image-1", "prompt": "sharpen"},
        files={"image": ("holiday photo.png", image, "application/octet-stream")},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    [post] = primary.posts("/images/edits")
    [part] = post.files()
    assert (part.name, part.filename, part.content_type) == ("image[]", "holiday photo.png", "image/png")
    assert part.data == image and int(post.headers["content-length"]) == len(post.body)


def test_a_relayed_edit_reads_only_the_image_header(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    """The pixels of a relayed upload are the provider's to decode: a PNG whose pixel data is
    cut short is sent on (a local engine refuses it with a 400, tests/compat/test_errors.py)."""
    admin.add("header-only", primary, PRIMARY_KEY)
    image = png(64, 64, seed=6)
    cut = image[: len(image) - 40]  # the header and size survive, the pixel data does not
    secret = gateway.new_key("relay-header")
    resp = httpx.post(
        gateway.api_base + "/images/edits",
        headers={"Authorization": f"Bearer {secret}"},
        data={"model": "gpt-image-1", "prompt": "sharpen"},
        files={"image": ("cut.png", cut, "image/png")},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert primary.posts("/images/edits")[0].files()[0].data == cut


def test_single_image_multipart_stream_becomes_image_array_with_true_and_decimal_strings(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("edit-stream", primary, PRIMARY_KEY, model_map={"gpt-image-1": "provider-edit-v2"})
    image = png(40, 40, seed=3)
    secret = gateway.new_key("relay-edit-stream")
    form = {
        "model": "gpt-image-1",
        "prompt": "make it night",
        "stream": "true",
        "partial_images": "2",
        "quality": "medium",
    }
    with httpx.stream(
        "POST",
        gateway.api_base + "/images/edits",
        data=form,
        files={"image": ("one.png", image, "image/png")},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    ) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    [post] = primary.posts("/images/edits")
    assert post.fields() == {
        "model": ["provider-edit-v2"],
        "prompt": ["make it night"],
        "stream": ["true"],
        "partial_images": ["2"],
        "quality": ["medium"],
    }
    assert [(f.name, f.data) for f in post.files()] == [("image[]", image)]


def test_json_edit_is_relayed_as_json(gateway: LiveServer, admin: Admin, primary: FakeUpstream) -> None:
    admin.add("json-edit", primary, PRIMARY_KEY, model_map={"gpt-image-1": "provider-edit-v2"})

    def data_url(data: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(data).decode()

    images = [{"image_url": data_url(png(32, 32, seed=4))}]
    mask = {"image_url": data_url(mask_png(32, 32, (0, 0, 16, 16)))}
    secret = gateway.new_key("relay-json-edit")
    resp = httpx.post(
        gateway.api_base + "/images/edits",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "gpt-image-1", "prompt": "a hat", "images": images, "mask": mask, "quality": "medium"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    [post] = primary.posts("/images/edits")
    assert post.headers["content-type"] == "application/json"
    assert post.json() == {
        "model": "provider-edit-v2",
        "prompt": "a hat",
        "images": images,
        "mask": mask,
        "quality": "medium",
    }


def test_upstream_url_results_are_fetched_and_outlive_the_upstream_url(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("urls", primary, PRIMARY_KEY)
    primary.default = ("url",)
    with sdk(gateway, gateway.new_key("relay-url")) as client:
        result, _ = generate(client)
    assert result.data and b64(result.data[0].b64_json) == tiny_png(0)
    [fetch] = [r for r in primary.received if r.method == "GET" and "/files/" in r.path]
    assert "authorization" not in fetch.headers  # the channel key is not sent to wherever the URL points
    primary.serve_files = False  # the provider's URL expires ...
    assert httpx.get(primary.base_url + fetch.path).status_code == 404
    ours = httpx.get(result.data[0].url or "")  # ... ours still serves the image
    assert ours.status_code == 200 and ours.content == tiny_png(0)


def test_upstream_without_usage_is_billed_by_the_gateways_token_math(
    gateway: LiveServer, admin: Admin, primary: FakeUpstream
) -> None:
    admin.add("no-usage", primary, PRIMARY_KEY)
    primary.usage = None
    secret = gateway.new_key("relay-no-usage")
    with sdk(gateway, secret) as client:
        result, _ = generate(client, n=2)
    assert result.usage and result.usage.output_tokens == 2 * 1056  # medium 1024x1024, two images
    expected = priced(result.usage.model_dump())
    assert expected > 0 and spent_micros(gateway, secret) == expected
