"""The image history: every request that delivered images has a record (prompt, parameters,
model, engine, cost, input and output hashes, a URL while the image lives), read by its own key
through GET /v1/images/history (paged, filtered), by the operator through /admin/history and
`imagegate history --export jsonl`; prompts can be left out."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LiveServer, make_settings, run_server
from tests.imaging import png
from tests.services import CLI

ADMIN = "admin-for-history"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with run_server(make_settings(tmp_path_factory.mktemp("history"), admin_key=ADMIN)) as live:
        yield live


def history(live: LiveServer, secret: str, **params: Any) -> dict[str, Any]:
    resp = httpx.get(
        live.api_base + "/images/history", params=params, headers={"Authorization": f"Bearer {secret}"}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_each_creation_is_recorded_for_its_key_with_prompt_cost_and_hashes(gateway: LiveServer) -> None:
    secret, other = gateway.new_key("hist-a"), gateway.new_key("hist-b")
    with openai.OpenAI(base_url=gateway.api_base, api_key=secret, max_retries=0) as client:
        made = client.images.generate(model="gpt-image-1", prompt="a red kite", size="256x256", n=2)
        reference = png(96, 64)
        edited = client.images.edit(
            model="gpt-image-1-mini",
            prompt="paint it green",
            image=("in.png", reference, "image/png"),
            size="96x64",
        )
        streamed = list(
            client.images.generate(model="gpt-image-1", prompt="a stream", size="128x128", stream=True)
        )
        with pytest.raises(openai.BadRequestError):  # refused: no record
            client.images.generate(model="gpt-image-1", prompt="x", size="1x1")
    page = history(gateway, secret)
    assert [e["prompt"] for e in page["data"]] == ["a stream", "paint it green", "a red kite"]
    stream_entry, edit_entry, gen_entry = page["data"]
    assert gen_entry["model"] == "gpt-image-1" and gen_entry["engine"] == "placeholder"
    assert gen_entry["params"]["size"] == "256x256" and gen_entry["params"]["n"] == 2
    assert [i["sha256"] for i in gen_entry["images"]] == [
        hashlib.sha256(base64.b64decode(d.b64_json or "")).hexdigest() for d in made.data or []
    ]
    assert httpx.get(gen_entry["images"][0]["url"]).content == base64.b64decode(made.data[0].b64_json or "")  # type: ignore[index]
    assert gen_entry["cost_usd"] > 0 and gen_entry["id"].startswith("hist_")
    assert edit_entry["inputs"] == [hashlib.sha256(reference).hexdigest()]
    assert (
        edit_entry["images"][0]["sha256"]
        == hashlib.sha256(base64.b64decode(edited.data[0].b64_json or "")).hexdigest()
    )  # type: ignore[index]
    completed = [e for e in streamed if e.type == "image_generation.completed"]
    assert (
        stream_entry["images"][0]["sha256"]
        == hashlib.sha256(base64.b64decode(completed[0].b64_json)).hexdigest()
    )
    assert "channel" not in gen_entry and "key_id" not in gen_entry  # the operator's view has them
    assert history(gateway, other)["data"] == []  # another key sees none of it

    first = history(gateway, secret, limit=2)
    assert len(first["data"]) == 2 and first["has_more"]
    rest = history(gateway, secret, limit=2, before=first["last_id"])
    assert [e["prompt"] for e in rest["data"]] == ["a red kite"] and not rest["has_more"]
    assert [e["prompt"] for e in history(gateway, secret, model="gpt-image-1-mini")["data"]] == [
        "paint it green"
    ]
    assert history(gateway, secret, since=gen_entry["created_at"] + 10**6)["data"] == []
    bad = httpx.get(
        gateway.api_base + "/images/history",
        params={"before": "x"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "before"

    every = httpx.get(
        gateway.base_url + "/admin/history", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    mine = [e for e in every["data"] if e["request_id"] == gen_entry["request_id"]]
    assert mine and mine[0]["key_id"] > 0 and "channel" in mine[0]


def test_prompts_can_be_left_out_and_the_cli_exports_jsonl(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, history_prompts=False)
    with run_server(settings) as live:
        secret = live.new_key("hist-cli")
        with openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0) as client:
            client.images.generate(model="gpt-image-1", prompt="a private prompt", size="128x128")
        [entry] = history(live, secret)["data"]
        assert entry["prompt"] is None and entry["images"]
    env = {**os.environ, "IMAGEGATE_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [*CLI, "history", "--export", "jsonl"], env=env, capture_output=True, text=True, check=True
    )
    [line] = out.stdout.splitlines()
    row = json.loads(line)
    assert row["prompt"] is None and row["model"] == "gpt-image-1" and len(row["outputs"]) == 1
    assert "a private prompt" not in out.stdout
