"""A Vertex AI Imagen channel (`--provider vertex`) driven through the official openai SDK, against a
strict fake Vertex AI (tests/fakes/vertex.py): a project's OAuth token or express mode's API key,
the guide's sizes exact, n up to 4 per call and fanned out beyond, PNG and JPEG asked and WebP
converted, a stream served, the per-image operator cost, filtered images and refused prompts,
rejected credentials and quotas."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.compat.providers import google_harness as harness
from tests.compat.providers.google_harness import (
    GUIDE_SIZES,
    VERTEX_KEY,
    VERTEX_TOKEN,
    channel_usage,
    generate_raw,
    opened,
)
from tests.compat.relay.harness import Admin, record, sdk, spent_micros, wait_for
from tests.conftest import LiveServer
from tests.fakes.upstream import tiny_png
from tests.fakes.vertex import QUOTA, FakeVertex

# The harness's fixtures, registered here (no conftest: other providers' tests share the directory).
gateway, admin, vertex_server, vertex = harness.gateway, harness.admin, harness.vertex_server, harness.vertex
IMAGEN, FAST = "imagen-4.0-generate-001", "imagen-4.0-fast-generate-001"
PROJECT = {"project": "imagegate-test", "location": "us-central1"}
PREDICT = "/v1/projects/imagegate-test/locations/us-central1/publishers/google/models/{}:predict"


def add(
    admin: Admin, fake: FakeVertex, model: str = IMAGEN, express: bool = False, **fields: Any
) -> dict[str, Any]:
    """A vertex channel serving the client's model name "imagen" as `model`: with the project's
    OAuth token, or (express) with an API key."""
    fields = {"models": ("imagen",), "model_map": {"imagen": model}, **fields}
    if not express:
        fields["options"] = PROJECT
    return admin.add("vertex", fake, VERTEX_KEY if express else VERTEX_TOKEN, provider="vertex", **fields)


def test_a_project_channel_predicts_with_its_oauth_token(
    gateway: LiveServer, admin: Admin, vertex: FakeVertex
) -> None:
    channel = add(admin, vertex)
    with sdk(gateway, gateway.new_key("vertex-project")) as client:
        result, headers = generate_raw(client, "imagen", size="1408x768", n=3)
    [post] = vertex.posts()
    assert post.path == PREDICT.format(IMAGEN)
    assert post.headers["authorization"] == f"Bearer {VERTEX_TOKEN}" and "x-goog-api-key" not in post.headers
    assert post.json() == {
        "instances": [{"prompt": "a red fox in a blue forest"}],
        "parameters": {
            "sampleCount": 3,
            "aspectRatio": "16:9",
            "sampleImageSize": "1K",
            "outputOptions": {"mimeType": "image/png"},
            "includeRaiReason": True,
        },
    }
    assert [opened(d.b64_json).size for d in result.data] == [(1408, 768)] * 3
    assert "x-imagegate-adapted" not in headers
    rec = record(gateway, headers["x-request-id"])
    assert rec["images"] == 3 and rec["upstream_cost_micros"] == 3 * 40_000  # $0.04 an image
    assert rec["cost_micros"] > 0 and rec["channel"] == channel["name"]
    row = channel_usage(admin, channel["name"])
    assert round(row["upstream_cost_usd"] * 1e6) == 120_000


def test_express_mode_predicts_with_an_api_key(gateway: LiveServer, admin: Admin, vertex: FakeVertex) -> None:
    add(admin, vertex, FAST, express=True)
    with sdk(gateway, gateway.new_key("vertex-express")) as client:
        result, headers = generate_raw(client, "imagen", size="1024x1024")
    [post] = vertex.posts()
    assert post.path == f"/v1/publishers/google/models/{FAST}:predict"
    assert post.headers["x-goog-api-key"] == VERTEX_KEY and "authorization" not in post.headers
    assert "sampleImageSize" not in post.json()["parameters"]  # the fast model has no 2K
    assert opened(result.data[0].b64_json).size == (1024, 1024)
    assert record(gateway, headers["x-request-id"])["upstream_cost_micros"] == 20_000


ASKED = {"1080x1080": ("2048x2048", "1:1", "2K"), "1080x1920": ("1536x2816", "9:16", "2K"),
         "1200x630": ("1408x768", "16:9", "1K"), "1200x675": ("1408x768", "16:9", "1K"),
         "1200x627": ("1408x768", "16:9", "1K")}  # fmt: skip


@pytest.mark.parametrize("size", GUIDE_SIZES)
def test_the_guides_sizes_come_back_exact(
    gateway: LiveServer, admin: Admin, vertex: FakeVertex, size: str
) -> None:
    add(admin, vertex)
    with sdk(gateway, gateway.new_key("vertex-sizes")) as client:
        result, headers = generate_raw(client, "imagen", size=size)
    native, ratio, tier = ASKED[size]
    parameters = vertex.posts()[0].json()["parameters"]
    assert (parameters["aspectRatio"], parameters["sampleImageSize"]) == (ratio, tier)
    image = opened(result.data[0].b64_json)
    assert f"{image.width}x{image.height}" == size
    assert headers["x-imagegate-adapted"] == f"size={native}->{size}"


def test_n_beyond_four_is_fanned_out(gateway: LiveServer, admin: Admin, vertex: FakeVertex) -> None:
    add(admin, vertex)
    with sdk(gateway, gateway.new_key("vertex-fan")) as client:
        result, headers = generate_raw(client, "imagen", size="1024x1024", n=6)
    assert sorted(p.json()["parameters"]["sampleCount"] for p in vertex.posts()) == [2, 4]
    assert headers["x-imagegate-adapted"] == "n=6->(4, 2)"
    assert len(result.data) == 6 and all(opened(d.b64_json).size == (1024, 1024) for d in result.data)
    assert record(gateway, headers["x-request-id"])["upstream_cost_micros"] == 6 * 40_000


def test_jpeg_is_asked_of_imagen_and_webp_converted(
    gateway: LiveServer, admin: Admin, vertex: FakeVertex
) -> None:
    add(admin, vertex)
    with sdk(gateway, gateway.new_key("vertex-formats")) as client:
        jpeg, jpeg_headers = generate_raw(
            client, "imagen", size="1024x1024", output_format="jpeg", output_compression=60
        )
        webp, webp_headers = generate_raw(client, "imagen", size="1024x1024", output_format="webp")
    asked = [p.json()["parameters"]["outputOptions"] for p in vertex.posts()]
    assert asked == [{"mimeType": "image/jpeg", "compressionQuality": 60}, {"mimeType": "image/png"}]
    assert opened(jpeg.data[0].b64_json).format == "JPEG" and "x-imagegate-adapted" not in jpeg_headers
    assert opened(webp.data[0].b64_json).format == "WEBP"
    assert webp_headers["x-imagegate-adapted"] == "format=png->webp"


def test_a_streaming_client_gets_one_completed_event(
    gateway: LiveServer, admin: Admin, vertex: FakeVertex
) -> None:
    add(admin, vertex)
    with sdk(gateway, gateway.new_key("vertex-stream")) as client:
        events = list(
            client.images.generate(
                model="imagen", prompt="a barn", size="1200x675", stream=True, partial_images=1
            )
        )
    assert [e.type for e in events] == ["image_generation.completed"]
    assert opened(events[0].b64_json).size == (1200, 675)


def test_filtered_images_are_asked_again(gateway: LiveServer, admin: Admin, vertex: FakeVertex) -> None:
    add(admin, vertex)
    vertex.push(("filter", 1, "Your current safety filter threshold filtered out 1 generated image."))
    with sdk(gateway, gateway.new_key("vertex-refill")) as client:
        result, headers = generate_raw(client, "imagen", size="1024x1024", n=4)
    assert [p.json()["parameters"]["sampleCount"] for p in vertex.posts()] == [4, 1]
    assert len(result.data) == 4 and all(d.b64_json for d in result.data)
    assert record(gateway, headers["x-request-id"])["upstream_cost_micros"] == 4 * 40_000


@pytest.mark.parametrize("how", ["every image filtered", "filtered again and again", "prompt refused"])
def test_what_imagens_filters_refuse_is_moderation_blocked(
    gateway: LiveServer, admin: Admin, vertex: FakeVertex, how: str
) -> None:
    add(admin, vertex)
    if how == "every image filtered":
        vertex.push(("filter", 2, "Filtered for people."))
    elif how == "filtered again and again":
        vertex.default = ("filter", 1, "Filtered for people.")
    else:
        vertex.default = ("rai-prompt",)
    secret = gateway.new_key("vertex-filtered")
    with sdk(gateway, secret) as client, pytest.raises(openai.BadRequestError) as refused:
        generate_raw(client, "imagen", size="1024x1024", n=2)
    assert refused.value.code == "moderation_blocked"
    assert ("Responsible AI" if how == "prompt refused" else "Filtered for people") in refused.value.message
    # Not retried elsewhere; a partly filtered answer is asked again twice, then refused.
    assert len(vertex.posts()) == (3 if how == "filtered again and again" else 1)
    assert spent_micros(gateway, secret) == 0


def test_a_rejected_token_disables_the_channel_until_the_key_check_answers(
    gateway: LiveServer, admin: Admin, vertex: FakeVertex
) -> None:
    channel = add(admin, vertex)
    vertex.tokens = set()  # the access token expired: 401 UNAUTHENTICATED
    with sdk(gateway, gateway.new_key("vertex-token")) as client, pytest.raises(openai.APIStatusError):
        generate_raw(client, "imagen", size="1024x1024")
    view = admin.channel(channel["id"])
    assert (
        view["enabled"] is False
        and view["disabled_reason"] == "auto: the provider answered 401 (key rejected)"
    )
    wait_for(lambda: len(vertex.gets()) >= 1, what="a key check")
    check = vertex.gets()[0]
    assert check.path == f"/v1beta1/publishers/google/models/{IMAGEN}"
    assert check.headers["authorization"] == f"Bearer {VERTEX_TOKEN}"
    vertex.tokens = {VERTEX_TOKEN}  # the operator's new token (here: the same one, valid again)
    wait_for(lambda: admin.channel(channel["id"])["enabled"], what="the key check to re-enable the channel")


def test_a_quota_error_is_retried_and_the_channel_kept(
    gateway: LiveServer, admin: Admin, vertex: FakeVertex
) -> None:
    channel = add(admin, vertex)
    vertex.push(QUOTA)
    with sdk(gateway, gateway.new_key("vertex-429")) as client:
        result, _ = generate_raw(client, "imagen", size="1024x1024")
    assert result.data and len(vertex.posts()) == 2
    assert admin.channel(channel["id"])["enabled"] is True


def test_what_imagen_cannot_do_is_refused_or_relayed(
    gateway: LiveServer, admin: Admin, vertex: FakeVertex
) -> None:
    add(admin, vertex)
    add(admin, vertex, models=("wide",), model_map={"wide": IMAGEN}, capabilities={"max_n": 8})
    with sdk(gateway, gateway.new_key("vertex-refused")) as client:
        with pytest.raises(openai.BadRequestError) as no_edits:
            client.images.edit(model="imagen", image=("a.png", tiny_png(), "image/png"), prompt="x")
        # An operator's override beyond what Imagen takes: Google's 400, in OpenAI's shape.
        with pytest.raises(openai.BadRequestError) as too_many:
            generate_raw(client, "wide", size="1024x1024", n=6)
    assert no_edits.value.code == "unsupported_value" and no_edits.value.body["param"] == "image"  # type: ignore[index]
    assert too_many.value.code == "invalid_value" and "sampleCount" in too_many.value.message
    assert [p.json()["parameters"]["sampleCount"] for p in vertex.posts()] == [6]
