"""The guarded fetcher (engines/fetch.py) against a real HTTP server on 127.0.0.1. Name resolution
is its injected port: no DNS, and no connection ever leaves loopback. The address policy is
injected too, so that 127.0.0.1 can play a public host and 127.0.0.2 the gateway's own network."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imagegate.engines.fetch import Fetcher, FetchError, FetchRefused, FetchTooLarge, is_public

pytestmark = pytest.mark.anyio
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
BIG = 150 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        port = self.server.server_address[1]
        if self.path == "/image.png":
            self._send(200, PNG)
        elif self.path == "/to-internal":  # a public host redirecting into the gateway's network
            self.send_response(302)
            self.send_header("location", f"http://127.0.0.2:{port}/image.png")
            self.end_headers()
        elif self.path == "/to-image":
            self.send_response(302)
            self.send_header("location", "/image.png")
            self.end_headers()
        elif self.path in ("/big", "/big-chunked"):  # 150 MiB, made as it is sent
            self.close_connection = True
            self.send_response(200)
            self.send_header("content-type", "image/png")
            if self.path == "/big":
                self.send_header("content-length", str(BIG))
            self.end_headers()
            block = b"\0" * (1 << 20)
            try:
                for _ in range(BIG // len(block)):
                    self.wfile.write(block)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self._send(404, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "image/png")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def only_first_loopback(address: str) -> bool:
    """The test's world: 127.0.0.1 is a public host, every other address is private."""
    return address == "127.0.0.1"


def fetcher(**kw: object) -> Fetcher:
    options: dict[str, object] = {
        "allow_private": False,
        "max_bytes": 1 << 20,
        "timeout_s": 10,
        "allowed": only_first_loopback,
        **kw,
    }
    return Fetcher(**options)  # type: ignore[arg-type]


async def test_loopback_is_refused_by_default_and_nothing_is_sent(port: int) -> None:
    before = len(_Handler.hits)
    with pytest.raises(FetchRefused):
        await Fetcher(allow_private=False, max_bytes=1 << 20, timeout_s=5).get(
            f"http://127.0.0.1:{port}/image.png"
        )
    assert len(_Handler.hits) == before
    data, declared = await Fetcher(allow_private=True, max_bytes=1 << 20, timeout_s=5).get(
        f"http://127.0.0.1:{port}/image.png"
    )
    assert (data, declared) == (PNG, "image/png")


async def test_every_redirect_hop_is_checked(port: int) -> None:
    assert (await fetcher().get(f"http://127.0.0.1:{port}/to-image"))[0] == PNG
    with pytest.raises(FetchRefused):
        await fetcher().get(f"http://127.0.0.1:{port}/to-internal")


async def test_the_connection_goes_to_the_address_that_was_checked(port: int) -> None:
    """DNS rebinding: the name answers a 'public' address for the check, then a private one. The
    connection is made to the checked address; the second answer is never asked for."""
    answers: list[str] = []

    async def rebinding(host: str, _port: int) -> list[str]:
        answers.append(host)
        return ["127.0.0.1"] if len(answers) == 1 else ["127.0.0.2"]

    data, _ = await fetcher(resolve=rebinding).get(f"http://images.rebind.test:{port}/image.png")
    assert data == PNG and answers == ["images.rebind.test"]  # resolved once, for the check
    with pytest.raises(FetchRefused):  # had it asked again, the answer would have been refused
        await fetcher(resolve=rebinding).get(f"http://images.rebind.test:{port}/image.png")


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_a_body_over_the_cap_is_cut_off(port: int, path: str) -> None:
    with pytest.raises(FetchTooLarge):
        await fetcher(max_bytes=2 << 20).get(f"http://127.0.0.1:{port}{path}")


async def test_failures_say_why(port: int) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        await fetcher().get(f"http://127.0.0.1:{port}/missing")

    async def nothing(_host: str, _port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(FetchError, match="does not resolve"):
        await fetcher(resolve=nothing).get(f"http://nowhere.test:{port}/image.png")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("100.64.0.1", False),  # shared address space (carrier NAT)
        ("224.0.0.1", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("169.254.169.254", False),  # link-local: cloud metadata
    ],
)
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.1", "017700000001", "[::ffff:127.0.0.1]"])
async def test_old_and_disguised_forms_of_loopback_are_refused(port: int, host: str) -> None:
    fetcher = Fetcher(allow_private=False, max_bytes=1024, timeout_s=5)  # the system's resolver
    with pytest.raises(FetchRefused):
        await fetcher.get(f"http://{host}:{port}/image.png")
