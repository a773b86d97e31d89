"""The pages imagegate serves work without the internet: every asset they load comes from the server.

Two checks of the rule drawn in http/routes/docs.py, both against `imagegate serve` as an operator
runs it: /docs and /redoc rendered in headless Chromium that reaches the server on loopback and
nothing else (tests/browser.py), by its address and by a name as a remote reader would see it; and
every HTML page the app serves scanned, without a browser, for assets on other hosts. The scan reads
the pages, not the JavaScript bundles they load (those name many URLs they never fetch): what the
bundles fetch at view time is the browser test's to see.

Screenshots of the rendered pages are left in test-artifacts/ (ignored by git).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

from imagegate.http.app import create_app
from tests.browser import SERVER_NAME, chromium, visit
from tests.conftest import make_settings
from tests.services import Process, spawn_server

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

OPERATIONS = ["/v1/images/generations", "/v1/images/edits"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_KEY = "sk-admin-pages"  # sent with every request of the scan, so a signed-in page is scanned too


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with spawn_server(tmp_path_factory.mktemp("pages"), IMAGEGATE_ADMIN_KEY=ADMIN_KEY) as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    with chromium() as context:
        yield context


# --- in the browser ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", SERVER_NAME])
@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_render_with_only_the_server_reachable(
    gateway: Process, browser: BrowserContext, path: str, host: str
) -> None:
    url = gateway.base_url.replace("127.0.0.1", host) + path
    with visit(browser, url) as seen:
        # Both UIs build the page from /openapi.json: the operations are there once they ran.
        seen.wait_for_text(OPERATIONS)
        seen.page.wait_for_load_state("networkidle")  # late loads too (icons, logos)
        ARTIFACTS.mkdir(exist_ok=True)
        seen.page.screenshot(path=ARTIFACTS / f"{path.strip('/')}-{host}.png")
    assert seen.foreign == [], "requests off the server"
    assert seen.errors == [], "console errors"


def test_assets_are_gzipped_revalidated_and_only_the_known_files(gateway: Process) -> None:
    with httpx.Client(base_url=gateway.base_url + "/docs/assets/") as http:
        bundle = http.get("swagger-ui-bundle.js")  # httpx asks for gzip and decodes it
        assert bundle.headers["content-encoding"] == "gzip"
        assert bundle.headers["content-type"].startswith("text/javascript")
        assert int(bundle.headers["content-length"]) < len(bundle.content) / 3
        again = http.get("swagger-ui-bundle.js", headers={"If-None-Match": bundle.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        favicon = http.get("favicon.png")
        assert favicon.headers["content-type"] == "image/png" and "content-encoding" not in favicon.headers
        assert b"cdn.redoc.ly" not in http.get("redoc.standalone.js").content
        missing = http.get("..%2Fcore.py")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"


# --- every HTML page, scanned -----------------------------------------------------------------

# Quoted absolute or scheme-relative URLs in inline script and style; url() and @import in CSS.
_SCRIPT_URL = re.compile(r"""["'`]((?:https?:)?//[^"'`\s]+)""")
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')\s]+)|@import\s+["']([^"']+)""")
# XML namespace names: identifiers that nothing fetches.
_NAMESPACES = ("http://www.w3.org/",)
_SRC_ATTRS = {"src", "srcset", "imagesrcset", "poster", "data", "background", "xlink:href"}


class _AssetRefs(HTMLParser):
    """The URLs in a page that a browser fetches to show it: not a link's target, which a reader may
    follow or not, but every other href (stylesheets, icons, preloads), src, srcset, CSS url() and
    @import, and any URL quoted in an inline script (a script may load anything it names)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in = tag if tag in ("script", "style") else None
        for name, value in attrs:
            if not value:
                continue
            if name in ("srcset", "imagesrcset"):
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()]
            elif name in _SRC_ATTRS or (name == "href" and tag not in ("a", "area")):
                self.urls.append(value)
            elif name == "style":
                self.urls += _css_urls(value)

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.urls += _SCRIPT_URL.findall(data)
        elif self._in == "style":
            self.urls += _css_urls(data)


def _css_urls(css: str) -> list[str]:
    return [a or b for a, b in _CSS_URL.findall(css)]


def assets_elsewhere(html: str, page_url: str) -> list[str]:
    """The assets of `html` (served at `page_url`) on any host but the page's own."""
    refs = _AssetRefs()
    refs.feed(html)
    refs.close()
    own = urlsplit(page_url).netloc
    found = []
    for ref in refs.urls:
        absolute = urljoin(page_url, ref.strip())
        parts = urlsplit(absolute)
        if parts.scheme in ("http", "https", "ws", "wss", "") and parts.netloc != own:
            if not absolute.startswith(_NAMESPACES):
                found.append(ref)
    return found


def _get_paths(app: FastAPI) -> list[str]:
    """Every path the app answers GET on, with `x` for each path parameter; a mount's root."""
    try:  # FastAPI 0.160 and later keep included routers nested in app.routes
        from fastapi.routing import iter_route_contexts

        routes: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:
        routes = list(app.routes)
    paths = []
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path and (methods is None or "GET" in methods):
            paths.append(re.sub(r"\{[^}]+\}", "x", path) + ("/" if methods is None else ""))
    return paths


def test_no_html_page_loads_an_asset_from_another_host(gateway: Process, tmp_path: Path) -> None:
    paths = _get_paths(create_app(make_settings(tmp_path)))
    pages: dict[str, httpx.Response] = {}
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        for path in paths:
            resp = http.get(path, timeout=30)
            if resp.headers.get("content-type", "").startswith("text/html"):
                pages[path] = resp
    assert {"/docs", "/redoc"} <= set(pages), f"HTML pages found among {paths}"
    for path, resp in pages.items():
        assert resp.status_code == 200, path
        assert assets_elsewhere(resp.text, str(resp.url)) == [], path
        # ...and browsers are told to refuse any that a script adds later.
        assert "default-src 'self'" in resp.headers.get("content-security-policy", ""), path


def test_the_scan_finds_what_fastapis_own_pages_load_from_cdns() -> None:
    page = "http://127.0.0.1:8000/docs"
    swagger = get_swagger_ui_html(openapi_url="/openapi.json", title="t").body.decode()
    redoc = get_redoc_html(openapi_url="/openapi.json", title="t").body.decode()
    assert {urlsplit(u).netloc for u in assets_elsewhere(swagger, page)} == {
        "cdn.jsdelivr.net",
        "fastapi.tiangolo.com",
    }
    assert {urlsplit(u).netloc for u in assets_elsewhere(redoc, page)} == {
        "cdn.jsdelivr.net",
        "fastapi.tiangolo.com",
        "fonts.googleapis.com",
    }
    crafted = """<html><head>
      <style>@import "https://a.example/x.css"; b { background: url(//b.example/i.png) }</style>
      <link rel="preload" href="https://c.example/f.woff2">
      <script>fetch('https://d.example/s.js')</script></head>
      <body><img srcset="/local.png 1x, https://e.example/i.png 2x">
      <div style="background:url('https://f.example/p.png')"></div>
      <a href="https://example.com/read-more">a link</a><svg xmlns="http://www.w3.org/2000/svg"></svg>
      <script src="/docs/assets/x.js"></script><img src="http://127.0.0.1:8000/ok.png"></body></html>"""
    assert {urlsplit(urljoin(page, u)).netloc for u in assets_elsewhere(crafted, page)} == {
        f"{c}.example" for c in "abcdef"
    }
