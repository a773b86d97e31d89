"""Every stored image carries a signed C2PA manifest, read back here with c2pa-python as any reader
would, against the operator CA that the server made in its data directory: generations in each
format, an edit's inputs as ingredients, a stream's images, an async job's, a relayed image whose
provider signed it first (kept as the parent ingredient), the stored blob and its history hash;
with signing off, none. And `imagegate provenance verify`, as an operator's reader runs it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from imagegate.provenance import Origin, Report, Sealer, inspect, load_credentials
from tests.conftest import LiveServer, make_settings, run_server
from tests.fakes.upstream import FakeUpstream, photo_png
from tests.imaging import encode, mask_png, noise, png
from tests.services import CLI

ADMIN = "admin-for-provenance"
MEDIA = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("provenance"), provenance=True, admin_key=ADMIN, job_poll_s=0.05
    )
    with run_server(settings) as live:
        yield live


def ca(live: LiveServer) -> bytes:
    return (live.settings.data_dir / "provenance" / "ca.pem").read_bytes()


def sdk(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.api_base, api_key=live.new_key("prov"), max_retries=0)


def read(live: LiveServer, data: bytes, fmt: str = "png") -> Report:
    report = inspect(data, MEDIA[fmt], ca(live))
    assert report.found and report.state == "Trusted", report
    assert report.claim_generator is not None and report.claim_generator.startswith("imagegate ")
    return report


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_a_generated_image_is_signed_as_made_by_a_trained_model(signing: LiveServer, fmt: str) -> None:
    with sdk(signing) as client:
        result = client.images.generate(
            model="gpt-image-1",
            prompt="a lighthouse at dusk",
            size="256x256",
            quality="low",
            output_format=fmt,
        )
    assert result.data is not None and result.data[0].b64_json and result.data[0].url
    data = base64.b64decode(result.data[0].b64_json)
    report = read(signing, data, fmt)
    [action] = report.actions
    assert action["action"] == "c2pa.created" and action["digitalSourceType"] == TRAINED
    assert action["softwareAgent"]["name"] == "gpt-image-1"
    assert report.generation == {"model": "gpt-image-1", "engine": "placeholder", "kind": "generation"}
    assert report.ingredients == []
    assert httpx.get(result.data[0].url).content == data  # the stored blob is the signed image


def test_an_edit_names_its_inputs_and_mask_as_ingredients(signing: LiveServer) -> None:
    with sdk(signing) as client:
        result = client.images.edit(
            model="gpt-image-1",
            image=[
                ("a.png", png(256, 256, 1), "image/png"),
                ("b.jpg", encode(noise(128, 96), "JPEG"), "image/jpeg"),
            ],
            mask=("mask.png", mask_png(256, 256, (32, 32, 128, 128)), "image/png"),
            prompt="put the two together",
            size="256x256",
            quality="low",
        )
    assert result.data is not None and result.data[0].b64_json
    report = read(signing, base64.b64decode(result.data[0].b64_json))
    assert report.generation["kind"] == "edit"
    assert [(i["relationship"], i["format"]) for i in report.ingredients] == [
        ("inputTo", "image/png"),
        ("inputTo", "image/jpeg"),
        ("inputTo", "image/png"),
    ]


def test_a_streamed_image_and_an_async_jobs_image_are_signed(signing: LiveServer) -> None:
    client = sdk(signing)
    with client:
        stream = client.images.generate(
            model="gpt-image-1", prompt="a fox", size="256x256", quality="low", stream=True, partial_images=1
        )
        completed = [e for e in stream if e.type == "image_generation.completed"]
    streamed = base64.b64decode(completed[0].b64_json)
    read(signing, streamed)
    # Stored under the SHA-256 of the signed bytes, which sealing handed on (provenance/embed.py).
    history = httpx.get(
        signing.api_base + "/images/history", headers={"Authorization": f"Bearer {client.api_key}"}
    ).json()
    assert history["data"][0]["images"][0]["sha256"] == hashlib.sha256(streamed).hexdigest()
    secret = signing.new_key("prov-job")
    headers = {"Authorization": f"Bearer {secret}"}
    job = httpx.post(
        signing.api_base + "/images/generations",
        json={"prompt": "a harbour", "size": "256x256", "quality": "low"},
        headers={**headers, "Prefer": "respond-async"},
    ).json()
    deadline = time.monotonic() + 30
    while (seen := httpx.get(f"{signing.api_base}/images/jobs/{job['id']}", headers=headers).json())[
        "status"
    ] != "completed":
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    read(signing, base64.b64decode(seen["result"]["data"][0]["b64_json"]))


def test_the_history_hashes_the_signed_image(signing: LiveServer) -> None:
    secret = signing.new_key("prov-history")
    headers = {"Authorization": f"Bearer {secret}"}
    body = httpx.post(
        signing.api_base + "/images/generations",
        json={"prompt": "a kite", "size": "256x256", "quality": "low"},
        headers=headers,
    ).json()
    data = base64.b64decode(body["data"][0]["b64_json"])
    [entry] = httpx.get(signing.api_base + "/images/history", headers=headers).json()["data"]
    assert entry["images"][0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_providers_own_manifest_is_kept_as_the_parent_ingredient(
    signing: LiveServer, tmp_path: Path
) -> None:
    provider = Sealer(load_credentials(tmp_path), "provider-1.0")  # as OpenAI signs gpt-image's answers
    signed_upstream = provider.seal(photo_png(64, 64), "png", Origin("gpt-image-1", "openai"))
    with FakeUpstream(image=signed_upstream) as fake:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        channel = {
            "name": "signed-provider",
            "base_url": fake.api_base,
            "api_key": "sk-x",
            "models": ["relayed"],
        }
        made = httpx.post(signing.base_url + "/admin/channels", json=channel, headers=admin)
        assert made.status_code == 201, made.text
        try:
            with sdk(signing) as client:
                result = client.images.generate(model="relayed", prompt="a fox", size="1024x1024")
        finally:
            httpx.delete(f"{signing.base_url}/admin/channels/{made.json()['id']}", headers=admin)
    assert result.data is not None and result.data[0].b64_json
    report = read(signing, base64.b64decode(result.data[0].b64_json))
    assert [a["action"] for a in report.actions] == ["c2pa.opened"]
    assert report.ingredients == [
        {"title": "provider.png", "relationship": "parentOf", "format": "image/png", "signed": True}
    ]
    assert report.generation["engine"] == "upstream:signed-provider"


def test_signing_off_leaves_images_unsigned(tmp_path: Path) -> None:
    with run_server(make_settings(tmp_path, provenance=False)) as live, sdk(live) as client:
        result = client.images.generate(model="gpt-image-1", prompt="plain", size="256x256", quality="low")
    assert result.data is not None and result.data[0].b64_json
    assert not inspect(base64.b64decode(result.data[0].b64_json), "image/png").found
    assert not (tmp_path / "provenance").exists()  # no chain made either


def verify(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMAGEGATE_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return subprocess.run([*CLI, "provenance", "verify", *args], env=env, capture_output=True, text=True)


def test_the_verify_command_prints_what_a_reader_sees(signing: LiveServer, tmp_path: Path) -> None:
    with sdk(signing) as client:
        result = client.images.generate(model="gpt-image-1", prompt="a boat", size="256x256", quality="low")
    assert result.data is not None and result.data[0].b64_json
    image = tmp_path / "boat.png"
    image.write_bytes(base64.b64decode(result.data[0].b64_json))
    data_dir = signing.settings.data_dir
    ok = verify(str(image), data_dir=data_dir)  # the server's CA, found from its data directory
    assert ok.returncode == 0, ok.stderr
    assert "Trusted" in ok.stdout and "c2pa.created, trainedAlgorithmicMedia, by gpt-image-1" in ok.stdout
    assert "engine placeholder" in ok.stdout
    stranger = verify(str(image), data_dir=tmp_path / "elsewhere")  # no anchor: valid, not trusted
    assert stranger.returncode == 0 and "Valid" in stranger.stdout and "not checked" in stranger.stdout
    as_json: dict[str, Any] = json.loads(verify(str(image), "--json", data_dir=data_dir).stdout)
    assert as_json["state"] == "Trusted" and as_json["generation"]["model"] == "gpt-image-1"
    tampered = bytearray(image.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    image.write_bytes(bytes(tampered))
    bad = verify(str(image), data_dir=data_dir)
    assert bad.returncode == 1 and "Invalid" in bad.stdout and "problem:" in bad.stdout
    plain = tmp_path / "plain.png"
    plain.write_bytes(png(16, 16))
    none = verify(str(plain), data_dir=data_dir)
    assert none.returncode == 1 and "no C2PA manifest" in none.stderr
