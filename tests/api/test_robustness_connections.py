"""Body limits, slow image URLs, bodies cut short and odd framing: never a 500 or a traceback."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.api.invariant import FUZZ, ErrorLog, assert_error_body, check
from tests.conftest import LiveServer, make_settings, run_server


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    settings = make_settings(tmp_path_factory.mktemp("small"), max_body_bytes=2048, fetch_timeout_s=1.0)
    with run_server(settings) as live:
        yield live, live.new_key()


@FUZZ
@given(
    size=st.integers(0, 6000),
    chunked=st.booleans(),
    kind=st.sampled_from(["json", "multipart", "edits-json"]),
)
def test_body_limit(
    small_server: tuple[LiveServer, str], server_log: ErrorLog, size: int, chunked: bool, kind: str
) -> None:
    live, key = small_server
    headers = {"authorization": f"Bearer {key}"}
    if kind == "multipart":
        head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\n'
        body = head + b"x" * size + b"\r\n--b--\r\n"
        headers["content-type"] = "multipart/form-data; boundary=b"
    else:
        body = json.dumps({"prompt": "x" * size, "size": "64x64", "quality": "low"}).encode()
        headers["content-type"] = "application/json"
    path = "/v1/images/edits" if kind != "json" else "/v1/images/generations"
    content: Any = iter([body[i : i + 500] for i in range(0, len(body), 500)]) if chunked else body
    resp = httpx.post(live.base_url + path, content=content, headers=headers, timeout=30)
    check(resp, server_log)
    if len(body) > 2048:
        assert resp.status_code == 413 and assert_error_body(resp)["code"] == "request_too_large"
    else:
        assert resp.status_code != 413


@contextlib.contextmanager
def trickling_server() -> Iterator[str]:
    """An image URL whose server promises 100 kB and sends a byte every 0.1 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
                while not stop.wait(0.1):
                    try:
                        conn.sendall(b"\x89")
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow.png"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_slow_image_url_times_out(small_server: tuple[LiveServer, str], server_log: ErrorLog) -> None:
    """fetch_timeout_s bounds the whole download, not each read (here 1 s)."""
    live, key = small_server
    with trickling_server() as url:
        started = time.monotonic()
        resp = httpx.post(
            live.base_url + "/v1/images/edits",
            timeout=30,
            json={"prompt": "x", "images": [{"image_url": url}]},
            headers={"authorization": f"Bearer {key}"},
        )
        elapsed = time.monotonic() - started
    err = check(resp, server_log)
    assert err is not None and (err["code"], err["param"]) == ("invalid_image_file", "images[0]"), err
    assert elapsed < 5, elapsed


def _port(live: LiveServer) -> int:
    return int(live.base_url.rsplit(":", 1)[1])


def _send_and_hang_up(live: LiveServer, head: str, body: bytes) -> bytes:
    """Send a request head and part of a body, close our side, return what came back."""
    with socket.create_connection(("127.0.0.1", _port(live)), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    time.sleep(0.2)  # let the server finish with the request and log, if it logs
    return answer


@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/images/edits"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=b"])
def test_body_cut_short_is_not_a_server_error(
    server: LiveServer, api_key: str, server_log: ErrorLog, path: str, framing: str, content_type: str
) -> None:
    """A Content-Length that promises more than comes, or a chunked body that stops."""
    if framing == "content-length":
        head_extra, body = "Content-Length: 1000\r\n", b'{"prompt": "x"'
    else:
        head_extra, body = "Transfer-Encoding: chunked\r\n", b'5\r\n{"pro\r\n40\r\nmpt"'
    head = (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: {content_type}\r\n{head_extra}\r\n"
    )
    answer = _send_and_hang_up(server, head, body)
    assert not answer.startswith(b"HTTP/1.1 5"), answer[:300]
    assert not (logged := server_log.take()), logged


@pytest.mark.parametrize("length", ["9" * 5000, "1" * 30, "-1", "+5", "0x10"])
def test_odd_content_length(server: LiveServer, api_key: str, server_log: ErrorLog, length: str) -> None:
    head = (
        f"POST /v1/images/generations HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    answer = _send_and_hang_up(server, head, b'{"prompt": "x"}')
    assert not answer.startswith(b"HTTP/1.1 5"), answer[:300]
    assert not (logged := server_log.take()), logged
