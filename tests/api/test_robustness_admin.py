"""The admin API as a hostile or careless admin meets it, on PostgreSQL (whose columns refuse
what SQLite stores): never a 500, always OpenAI's error body, nothing logged as an error. Every
length and range a column or an integer can hold is checked where the value enters (hardening)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import text

from imagegate.storage.db import make_engine
from tests.api.invariant import FUZZ, ErrorLog, check
from tests.conftest import LiveServer, make_settings, run_server
from tests.services import pg_schema

ADMIN = "admin-robustness-key"
JSON = {"content-type": "application/json"}
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.just(1e20),
    st.just(1e13),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
texts = st.one_of(st.text(max_size=20), st.text(min_size=190, max_size=320), st.just("é" * 201))
values = st.one_of(st.none(), st.booleans(), numbers, texts, st.lists(texts, max_size=3))


def _json(body: dict[str, Any]) -> str:
    """As Python writes JSON: NaN and Infinity included (a careless client sends them too)."""
    return json.dumps(body)


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str) -> Iterator[LiveServer]:
    with pg_schema(postgres_server_url) as url:
        settings = make_settings(tmp_path_factory.mktemp("admin"), admin_key=ADMIN, database_url=url)
        with run_server(settings) as live:
            yield live


@pytest.fixture(scope="module")
def admin(admin_server: LiveServer, server_log: ErrorLog) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=admin_server.base_url + "/admin", timeout=30, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as client:
        yield client


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "name",
                "tier",
                "credit_usd",
                "rpm",
                "rpd",
                "ipm",
                "concurrency",
                "multiplier",
                "allowed_models",
                "expires_at",
            ]
        ),
        values,
    )
)
@example(body={"name": "big", "credit_usd": 1e13})
@example(body={"name": "mult", "multiplier": 1e20})
@example(body={"name": "x" * 201})
@example(body={"name": "limits", "rpm": 2**40, "concurrency": 2**31})
def test_key_bodies(admin: httpx.Client, server_log: ErrorLog, body: dict[str, Any]) -> None:
    created = check(admin.post("/keys", content=_json(body), headers=JSON), server_log)
    if created is None:  # then the key's own routes with the same body
        ident = str(admin.get("/keys").json()["data"][-1]["id"])
        check(admin.patch(f"/keys/{ident}", content=_json(body), headers=JSON), server_log)
        credit = {"amount_usd": body.get("credit_usd", 1)}
        check(admin.post(f"/keys/{ident}/credits", json=credit), server_log)


@FUZZ
@given(
    ident=st.one_of(st.text(min_size=1, max_size=40), st.integers(0, 10**30).map(str)),
    method=st.sampled_from(["GET", "PATCH", "DELETE", "CREDIT"]),
)
@example(ident="²", method="GET")
@example(ident="1" * 26, method="GET")
@example(ident="1" * 26, method="CREDIT")
def test_key_ids(admin: httpx.Client, server_log: ErrorLog, ident: str, method: str) -> None:
    path = f"/keys/{quote(ident, safe='')}"
    if method == "CREDIT":
        resp = admin.post(path + "/credits", json={"amount_usd": 1})
    elif method == "PATCH":
        resp = admin.patch(path, json={"name": "renamed"})
    else:
        resp = admin.request(method, path)
    check(resp, server_log)
    for channel_method in ("GET", "DELETE"):
        check(admin.request(channel_method, f"/channels/{quote(ident, safe='')}"), server_log)


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "name",
                "base_url",
                "api_key",
                "models",
                "model_map",
                "priority",
                "weight",
                "timeout_s",
                "prices",
            ]
        ),
        values,
    )
)
@example(body={"name": "n" * 101, "base_url": "http://127.0.0.1:9/v1", "api_key": "k", "models": ["m"]})
@example(
    body={"name": "long-model", "base_url": "http://127.0.0.1:9/v1", "api_key": "k", "models": ["m" * 101]}
)
@example(
    body={
        "name": "prio",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "k",
        "models": ["m"],
        "priority": 2**40,
        "weight": 2**40,
    }
)
def test_channel_bodies(admin: httpx.Client, server_log: ErrorLog, body: dict[str, Any]) -> None:
    if "name" in body and isinstance(body["name"], str):
        body["name"] = f"{body['name']}{uuid.uuid4().hex[:4]}" if len(body["name"]) < 90 else body["name"]
    created = check(admin.post("/channels", content=_json(body), headers=JSON), server_log)
    if created is None:
        ident = str(admin.get("/channels").json()["data"][-1]["id"])
        check(admin.patch(f"/channels/{ident}", content=_json(body), headers=JSON), server_log)
        check(admin.delete(f"/channels/{ident}"), server_log)


@FUZZ
@given(
    key=st.one_of(st.none(), st.text(max_size=30), st.integers(-(2**70), 2**70).map(str), st.just("²")),
    days=st.one_of(st.none(), st.integers(-(2**70), 2**70).map(str), st.text(max_size=12), st.just("1e999")),
)
@example(key="1" * 26, days=str(10**30))
@example(key="a\x00", days="-5")
def test_usage_queries(admin: httpx.Client, server_log: ErrorLog, key: str | None, days: str | None) -> None:
    params = {name: value for name, value in (("key", key), ("days", days)) if value is not None}
    check(admin.get("/usage", params=params), server_log)


@FUZZ
@given(body=st.dictionaries(st.sampled_from(["amount_usd", "note"]), values))
@example(body={"amount_usd": "1e999"})
@example(body={"amount_usd": 1, "note": "é" * 1001})
@example(body={"amount_usd": 1, "note": "\x00"})
def test_credit_bodies(admin: httpx.Client, server_log: ErrorLog, body: dict[str, Any]) -> None:
    keys = admin.get("/keys").json()["data"]
    ident = str(keys[0]["id"]) if keys else "1"
    check(admin.post(f"/keys/{ident}/credits", content=_json(body), headers=JSON), server_log)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT"]),
    path=st.sampled_from(
        [
            "/keys",
            "/keys/1",
            "/keys/1/credits",
            "/usage",
            "/channels",
            "/channels/1",
            "/keys/%C2%B2/credits",
            "/nothing",
        ]
    ),
    content=st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"{}", b"[]", b"null", b'{"name": 1}'])),
)
def test_every_route_and_method(
    admin: httpx.Client, server_log: ErrorLog, method: str, path: str, content: bytes
) -> None:
    """Every /admin route with any method and a junk body: a 4xx in OpenAI's shape, or a success."""
    if method == "DELETE" and path.startswith(("/keys/1", "/channels/1")):
        path = path.replace("/1", "/999999")  # not the keys the other tests use
    check(admin.request(method, path, content=content, headers=JSON), server_log)


def test_named_cases(admin: httpx.Client, admin_server: LiveServer, server_log: ErrorLog) -> None:
    """The hardening issue's cases, each a clear 4xx, and balances that stay integers."""
    assert admin.get("/keys/²").status_code == 404
    assert admin.get("/keys/" + "1" * 26).status_code == 404
    big = admin.post("/keys", json={"name": "big", "credit_usd": 1e13})
    assert big.status_code == 400 and big.json()["error"]["param"] == "credit_usd"
    mult = admin.post("/keys", json={"name": "mult", "multiplier": 1e20})
    assert mult.status_code == 400 and mult.json()["error"]["param"] == "multiplier"
    key = admin.post("/keys", json={"name": "rich", "credit_usd": 999_999_999})
    assert key.status_code == 201
    again = admin.post(f"/keys/{key.json()['id']}/credits", json={"amount_usd": 999_999_999})
    assert again.status_code == 400 and again.json()["error"]["param"] == "amount_usd"
    assert not server_log.take()


def test_sqlite_balances_stay_integers_after_huge_top_ups(tmp_path: Path) -> None:
    with (
        run_server(make_settings(tmp_path, admin_key=ADMIN)) as live,
        httpx.Client(
            base_url=live.base_url + "/admin", headers={"Authorization": f"Bearer {ADMIN}"}
        ) as client,
    ):
        ident = client.post("/keys", json={"name": "rich", "credit_usd": 500_000_000}).json()["id"]
        assert client.post(f"/keys/{ident}/credits", json={"amount_usd": 500_000_000}).status_code == 200
        assert client.post(f"/keys/{ident}/credits", json={"amount_usd": 500_000_000}).status_code == 400
    sql = make_engine(live.settings.resolved_database_url)
    with sql.connect() as conn:
        query = text("SELECT typeof(balance_micros), balance_micros FROM api_keys")
        kind, balance = conn.execute(query).one()
    sql.dispose()
    assert (kind, balance) == ("integer", 10**15)


def test_request_headers_and_fields_that_columns_cannot_hold(
    admin_server: LiveServer, server_log: ErrorLog
) -> None:
    secret = admin_server.new_key("headers")
    body = {"prompt": "a cat", "size": "64x64", "quality": "low"}
    url = admin_server.api_base + "/images/generations"
    for idem in ("k" * 300, "é" * 200):
        resp = httpx.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": idem.encode("utf-8")},
        )
        assert resp.status_code == 400 and "Idempotency-Key" in resp.json()["error"]["message"]
    resp = httpx.post(url, json={**body, "user": "u" * 300}, headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "user"
    assert not server_log.take()
