"""Headless Chromium, driven by Playwright, that reaches one server on loopback and nothing else:
for the tests of the pages imagegate serves.

The browser is Debian's `chromium` package; Playwright is told where it is and never downloads one.
Without Chromium or Playwright the browser tests skip and say why; with IMAGEGATE_TEST_CHROMIUM set
to the browser's path (as .ci/run does, after installing it if missing) they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, Route, WebSocket

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# A name for the server as a reader elsewhere would reach it (not localhost, which some page
# libraries treat as a special case). Chromium's resolver maps it to loopback and no other name.
SERVER_NAME = "imagegate.test"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP {SERVER_NAME} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def _unavailable(required: str | None, why: str) -> NoReturn:
    if required:
        pytest.fail(f"IMAGEGATE_TEST_CHROMIUM={required} is set, but {why}")
    pytest.skip(f"{why} (set IMAGEGATE_TEST_CHROMIUM to require the browser tests)")


@contextlib.contextmanager
def chromium() -> Iterator[BrowserContext]:
    """A browser with a new, empty profile; skips or fails (see above) when there is none."""
    required = os.environ.get("IMAGEGATE_TEST_CHROMIUM")
    path = required or DEFAULT_CHROMIUM
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        _unavailable(required, f"Playwright is not installed ({exc}; it is in the dev extras)")
    if not os.access(path, os.X_OK):
        _unavailable(required, f"there is no Chromium at {path} (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="imagegate-chromium-") as profile, sync_playwright() as pw:
        try:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=path, args=FLAGS, headless=True
            )
        except Error as exc:
            _unavailable(required, f"Chromium at {path} did not start: {exc}")
        try:
            yield context
        finally:
            context.close()


@dataclass
class Visit:
    """One page, opened with every request to another host aborted and recorded."""

    page: Page
    host: str
    foreign: list[str] = field(default_factory=list)  # requests and sockets to any other host
    errors: list[str] = field(default_factory=list)  # console errors: failed or blocked loads, script errors

    def wait_for_text(self, texts: list[str], timeout_ms: int = 30_000) -> None:
        """Until the page shows every one of `texts`; fails saying what went wrong on the way."""
        from playwright.sync_api import TimeoutError as Timeout

        script = "texts => texts.every(t => document.body.innerText.includes(t))"
        try:
            self.page.wait_for_function(script, arg=texts, timeout=timeout_ms)
        except Timeout:
            pytest.fail(
                f"{self.page.url} never showed {texts}; requests off the server: {self.foreign}; "
                f"console errors: {self.errors}"
            )

    def _is_foreign(self, url: str) -> bool:
        parts = urlsplit(url)  # blob: and data: URLs are made inside the page
        return parts.scheme not in ("blob", "data", "about") and parts.hostname != self.host

    def _gate(self, route: Route) -> None:
        if self._is_foreign(route.request.url):
            route.abort("blockedbyclient")  # recorded by _on_request
        else:
            route.continue_()

    def _on_request(self, request: Request) -> None:
        # Also sees what never reaches the route: requests the page's CSP blocked.
        if self._is_foreign(request.url):
            self.foreign.append(request.url)

    def _on_socket(self, socket: WebSocket) -> None:
        if self._is_foreign(socket.url):
            self.foreign.append(socket.url)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@contextlib.contextmanager
def visit(browser: BrowserContext, url: str) -> Iterator[Visit]:
    """Open `url` in a new tab that may reach `url`'s own host only."""
    page = browser.new_page()
    seen = Visit(page, urlsplit(url).hostname or "")
    page.route("**/*", seen._gate)
    page.on("request", seen._on_request)
    page.on("websocket", seen._on_socket)
    page.on("console", seen._on_console)
    page.on("pageerror", lambda exc: seen.errors.append(f"uncaught: {exc}"))
    try:
        page.goto(url)
        yield seen
    finally:
        page.close()
