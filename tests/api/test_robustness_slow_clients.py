"""Slow or idle connections are dropped (hardening): partial headers, an endless chunked body and a
silent socket were all still open after 60 s. Raw sockets against a real server on loopback, with
short deadlines."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegate.http.app import create_app
from imagegate.http.connections import uvicorn_options
from imagegate.http.serve import serve_in_thread
from tests.conftest import make_settings

DEADLINE_S = 0.6


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    settings = make_settings(
        tmp_path_factory.mktemp("slow"),
        header_timeout_s=DEADLINE_S,
        body_timeout_s=DEADLINE_S,
        keep_alive_timeout_s=DEADLINE_S,
        max_connections=20,
    )
    with serve_in_thread(create_app(settings), **uvicorn_options(settings)) as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        yield host, int(port)


def read_until_closed(sock: socket.socket, within_s: float) -> bytes:
    """What the server sends before it closes the connection; fails if it is still open later."""
    sock.settimeout(within_s)
    chunks = []
    started = time.monotonic()
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"still open after {time.monotonic() - started:.1f} s")
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_a_silent_socket_is_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        answer = read_until_closed(sock, within_s=10 * DEADLINE_S)
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer


def test_headers_sent_a_byte_at_a_time_are_cut_off(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        started = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ":
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.05)
            if time.monotonic() - started > 10 * DEADLINE_S:
                pytest.fail("the server still reads headers trickled for 10 deadlines")
        answer = read_until_closed(sock, within_s=10 * DEADLINE_S)
    assert answer.startswith(b"HTTP/1.1 408")


def test_an_endless_chunked_body_is_cut_off(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(
            b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 10 * DEADLINE_S:
            try:
                sock.sendall(b"1\r\n \r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.05)
        if not closed:
            read_until_closed(sock, within_s=2 * DEADLINE_S)


def test_an_idle_kept_alive_connection_is_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(sock, within_s=10 * DEADLINE_S)
    assert answer.startswith(b"HTTP/1.1 200")


def test_connections_over_the_cap_get_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_connections=2, header_timeout_s=30)
    with serve_in_thread(create_app(settings), **uvicorn_options(settings)) as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        held = [socket.create_connection((host, int(port))) for _ in range(3)]
        try:
            time.sleep(0.2)
            extra = socket.create_connection((host, int(port)))
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = read_until_closed(extra, within_s=5)
            extra.close()
        finally:
            for sock in held:
                sock.close()
    assert answer.startswith(b"HTTP/1.1 503")
