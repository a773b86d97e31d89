"""The web console (/console), end to end: `imagegate serve` on loopback, headless Chromium that may
reach nothing else (tests/browser.py), and a fake OpenAI-compatible provider (tests/fakes/).

The story a new operator and their first customer live through: the operator signs in with the
admin key, creates a key (shown once), adds a channel to the fake provider and tests it; the key
holder signs in with the new key, generates with partial images streamed, sees the image and its
cost, paints a mask and edits, reads the history and account, and is refused the operator's pages;
the operator then sees the usage charts, margin by channel included. Beside the browser, plain
httpx checks the cookie's flags, the CSRF token and the Origin check.

Screenshots of every page go to test-artifacts/console-*.png (ignored by git).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from PIL import Image

from tests.browser import chromium, visit
from tests.fakes.upstream import FakeUpstream, photo_png
from tests.services import Process, spawn_server

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_KEY = "sk-admin-console"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(streams=True, image=photo_png(1024, 1024, seed=3)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with spawn_server(tmp_path_factory.mktemp("console"), IMAGEGATE_ADMIN_KEY=ADMIN_KEY) as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    with chromium() as context:
        yield context


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"console-{name}.png", full_page=True)


def shown(page: Page, locator: Locator) -> None:
    """Wait for `locator`; a timeout fails with what the console last said (its toast)."""
    from playwright.sync_api import TimeoutError as Timeout

    try:
        locator.wait_for(timeout=15_000)
    except Timeout:
        pytest.fail(f"{locator} never showed; the console said: {page.locator('#toast').inner_text()!r}")


def sign_in(page: Page, key: str, expect: str) -> None:
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(expect).first.wait_for()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()


def test_operator_and_key_holder_in_the_browser(
    gateway: Process, fake: FakeUpstream, browser: BrowserContext
) -> None:
    with visit(browser, gateway.base_url + "/console/") as seen:
        page = seen.page
        page.set_viewport_size({"width": 1280, "height": 900})
        page.get_by_role("heading", name="Sign in").wait_for()
        shot(page, "signin")

        # The operator: a key, shown once.
        sign_in(page, ADMIN_KEY, "Create key")
        page.get_by_label("Name", exact=True).fill("shop")
        page.get_by_label("Credit (USD)").fill("5")
        page.get_by_label("Requests / min").fill("30")
        page.get_by_label("Price multiplier").fill("1.5")  # the operator's margin over the provider's price
        page.get_by_role("button", name="Create key").click()
        secret = page.locator("code.newkey").inner_text()
        assert secret.startswith("sk-ig-")
        page.get_by_role("cell", name="shop").wait_for()
        shot(page, "keys")
        page.reload()
        page.get_by_role("cell", name="shop").wait_for()
        assert secret not in page.content(), "the new key is shown once only"

        # No usage yet: no chart.
        page.get_by_role("link", name="Usage").click()
        page.get_by_text("No usage yet.").wait_for()
        assert page.locator("svg.chart").count() == 0

        # A channel to the fake provider, tested with one request.
        page.get_by_role("link", name="Channels").click()
        page.get_by_role("heading", name="Add channel").wait_for()  # the page drawn, not the last one
        page.get_by_label("Name", exact=True).fill("fake-openai")
        page.get_by_label("Base URL").fill(fake.api_base)
        page.get_by_label("Provider API key").fill("sk-upstream")
        page.get_by_label("Models (comma-separated)").fill("gpt-image-1")
        page.get_by_role("button", name="Add channel").click()
        shown(page, page.get_by_role("cell", name="fake-openai"))
        posts_before = len(fake.posts())
        page.get_by_role("button", name="Test").click()
        page.get_by_text("The channel answered.").wait_for()
        assert len(fake.posts()) == posts_before + 1
        shot(page, "channels")
        sign_out(page)

        # The key holder: generate, streamed.
        sign_in(page, secret, "Playground")
        page.get_by_label("Prompt").fill("a lighthouse on a cliff at dusk")
        page.get_by_label("Size", exact=True).select_option("1080x1080")
        page.get_by_role("button", name="Generate").click()
        page.locator("figure.shot:not(.partial) figcaption", has_text="Result").wait_for()
        page.locator("dl.facts dt", has_text="Cost").wait_for()
        cost = page.locator("dl.facts dd").first.inner_text()
        assert cost.startswith("$") and cost != "$0.00"
        width = page.locator("figure.shot img").first.evaluate("img => img.naturalWidth")
        assert width > 0
        generation = fake.posts("/images/generations")[-1].params
        assert generation["stream"] is True and generation["prompt"] == "a lighthouse on a cliff at dusk"
        shot(page, "playground")

        # An edit with a painted mask: transparent where painted, sent as a PNG with alpha.
        page.get_by_label("Mode", exact=True).select_option("edit")
        page.get_by_label("Images to edit").set_input_files(
            {"name": "room.png", "mimeType": "image/png", "buffer": photo_png(512, 512, seed=9)}
        )
        canvas = page.locator("canvas.maskpaint")
        canvas.wait_for()
        box = canvas.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=12)
        page.mouse.up()
        page.get_by_role("button", name="Edit", exact=True).click()
        page.locator("dl.facts dt", has_text="Cost").wait_for()
        edit = fake.posts("/images/edits")[-1]
        mask = next(p for p in edit.files() if p.name == "mask")
        alpha = Image.open(io.BytesIO(mask.data)).convert("RGBA").getchannel("A")
        low, high = alpha.getextrema()
        assert (low, high) == (0, 255), "painted area transparent, the rest opaque"
        assert alpha.size == (512, 512) and alpha.getpixel((10, 10)) == 255
        shot(page, "edit")

        page.get_by_role("link", name="History").click()
        page.locator("article.entry").nth(1).wait_for()  # the generation and the edit
        assert page.locator("article.entry", has_text="a lighthouse on a cliff at dusk").count() == 2
        page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        shot(page, "history")
        page.get_by_role("link", name="Account").click()
        page.get_by_role("heading", name="Account").wait_for()
        shot(page, "account")

        # Not the operator's pages, nor their API.
        page.goto(gateway.base_url + "/console/#/keys")
        page.get_by_text("This page is the operator's.").wait_for()
        assert page.request.get(gateway.base_url + "/console/api/keys").status == 403  # with its cookie

        # At phone width, in Chinese.
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(gateway.base_url + "/console/#/playground")
        page.get_by_label("Language").select_option("zh")
        page.get_by_role("button", name="生成").wait_for()
        shot(page, "playground-phone-zh")
        page.get_by_label("Language").select_option("en")
        page.set_viewport_size({"width": 1280, "height": 900})
        sign_out(page)

        # One refused request (through the API): the failures chart counts it by status and code.
        bad = httpx.post(
            gateway.base_url + "/v1/images/generations",
            headers={"Authorization": f"Bearer {secret}"},
            json={"prompt": "x", "size": "13x13"},
        )
        assert bad.status_code == 400

        # The operator's charts now have bars, and the channel's margin.
        sign_in(page, ADMIN_KEY, "Create key")
        page.get_by_role("link", name="Usage").click()
        page.locator("svg.chart").first.wait_for()
        assert page.locator("svg.chart rect").count() > 0
        assert page.locator("figure.chartbox", has_text="Margin — By channel").count() == 1
        by_channel = page.locator("figure.chartbox", has_text="Margin — By channel")
        bars = by_channel.locator("rect title").all_text_contents()
        margin = next(b for b in bars if b.startswith("fake-openai · Margin: $"))
        assert float(margin.rpartition("$")[2]) > 0, bars
        failures = page.locator("figure.chartbox", has_text="Failed — By status and code")
        assert "400" in " ".join(failures.locator("rect title").all_text_contents())
        assert page.locator("figure.chartbox", has_text="Latency").locator("rect").count() == 3
        assert page.locator("figure.chartbox", has_text="By model").locator("rect").count() > 0
        shot(page, "usage")
        page.get_by_role("link", name="Jobs").click()
        page.get_by_text("Jobs queue").wait_for()
        shot(page, "jobs")
    assert seen.foreign == [], "requests off the server"
    assert seen.errors == [], "console errors"


def test_cookie_flags_csrf_and_origin(gateway: Process) -> None:
    with httpx.Client(base_url=gateway.base_url) as http:
        page = http.get("/console/")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
        signed = http.post("/console/api/session", json={"key": ADMIN_KEY})
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"].lower()
        for flag in ("httponly", "samesite=strict", "path=/console"):
            assert flag in cookie
        assert "secure" not in cookie  # plain http on loopback; https requests get it
        token = signed.json()["csrf_token"]
        first_cookie = http.cookies["imagegate_console"]
        again = http.post("/console/api/session", json={"key": ADMIN_KEY})  # replaces the first
        assert again.json()["csrf_token"] != token
        token = again.json()["csrf_token"]
        stale = httpx.get(gateway.base_url + "/console/api/keys", cookies={"imagegate_console": first_cookie})
        assert stale.status_code == 401

        refused = http.post("/console/api/keys", json={"name": "no-token"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "csrf_token_invalid"
        assert set(refused.json()["error"]) >= {"message", "type", "param", "code"}
        wrong = http.post("/console/api/keys", json={"name": "wrong"}, headers={"X-CSRF-Token": "x" * 43})
        assert wrong.status_code == 403
        foreign = http.post(
            "/console/api/keys",
            json={"name": "foreign"},
            headers={"X-CSRF-Token": token, "Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "csrf_origin_mismatch"
        made = http.post(
            "/console/api/keys",
            json={"name": "with-token"},
            headers={"X-CSRF-Token": token, "Origin": gateway.base_url},
        )
        assert made.status_code == 201 and made.headers["cache-control"] == "no-store"

        assert http.delete("/console/api/session", headers={"X-CSRF-Token": token}).status_code == 200
        assert http.get("/console/api/keys").status_code == 401
        assert http.get("/console/api/session").json() == {"signed_in": False}

    with httpx.Client(base_url=gateway.base_url, headers={"X-Forwarded-Proto": "https"}) as https:
        # uvicorn trusts the forwarded scheme from loopback: the cookie is then Secure.
        signed = https.post("/console/api/session", json={"key": made.json()["secret"]})
        assert "secure" in signed.headers["set-cookie"].lower()
        assert signed.json()["role"] == "key"

    with httpx.Client(base_url=gateway.base_url) as holder:
        holder.post("/console/api/session", json={"key": made.json()["secret"]})
        denied = holder.get("/console/api/keys")
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "operator_only"
        assert holder.get("/console/api/account").status_code == 200
        revoked = httpx.delete(
            f"{gateway.base_url}/admin/keys/{made.json()['id']}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert revoked.status_code == 200
        assert holder.get("/console/api/account").status_code == 401  # the key's sessions end with it
        assert holder.get("/console/api/session").json() == {"signed_in": False}


def test_sign_in_with_a_wrong_key_is_refused(gateway: Process) -> None:
    refused = httpx.post(gateway.base_url + "/console/api/session", json={"key": "sk-ig-nothing-like-it"})
    assert refused.status_code == 401 and "set-cookie" not in refused.headers
    assert refused.json()["error"]["type"] == "invalid_request_error"
