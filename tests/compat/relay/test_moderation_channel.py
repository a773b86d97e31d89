"""A moderation endpoint on a configured channel (OpenAI's /v1/moderations shape), asked before
generating: what it flags is blocked like the rules' hits; if it cannot answer, 503."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.compat.relay.harness import ADMIN, PRIMARY_KEY
from tests.conftest import make_settings, run_server
from tests.fakes.upstream import FakeUpstream, error

BODY = {"model": "gpt-image-1", "prompt": "a quiet harbour at dawn", "size": "1024x1024", "quality": "low"}


def verdict(flagged: bool, **categories: bool) -> tuple[object, ...]:
    return (
        "status",
        200,
        {
            "id": "modr-1",
            "model": "omni-moderation-latest",
            "results": [{"flagged": flagged, "categories": categories}],
        },
        {},
    )


def test_the_moderation_channel_decides_before_anything_is_generated(
    tmp_path: Path, primary: FakeUpstream
) -> None:
    settings = make_settings(tmp_path, admin_key=ADMIN, moderation_channel="moderator")
    with run_server(settings) as gateway:
        added = httpx.post(
            gateway.base_url + "/admin/channels",
            headers={"Authorization": f"Bearer {ADMIN}"},
            json={
                "name": "moderator",
                "base_url": primary.api_base,
                "api_key": PRIMARY_KEY,
                "models": ["moderation-only"],
            },
        )
        assert added.status_code == 201, added.text
        auth = {"Authorization": f"Bearer {gateway.new_key('moderated')}"}
        url = gateway.api_base + "/images/generations"

        primary.push(verdict(False, violence=False))
        assert httpx.post(url, json=BODY, headers=auth, timeout=30).status_code == 200
        [asked] = primary.posts("/moderations")
        assert asked.json() == {"model": "omni-moderation-latest", "input": BODY["prompt"]}
        assert asked.bearer == PRIMARY_KEY

        primary.push(verdict(True, violence=True, hate=False))
        blocked = httpx.post(url, json=BODY, headers=auth, timeout=30)
        assert blocked.status_code == 400
        error_body = blocked.json()["error"]
        assert error_body["code"] == "moderation_blocked"
        assert error_body["moderation_details"]["categories"] == ["violence"]

        primary.push(error(500))
        assert httpx.post(url, json=BODY, headers=auth, timeout=30).status_code == 503  # fails closed
        low = httpx.post(url, json={**BODY, "moderation": "low"}, headers=auth, timeout=30)
        assert low.status_code == 200 and len(primary.posts("/moderations")) == 3  # 'low': not asked
