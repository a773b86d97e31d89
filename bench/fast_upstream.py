"""A fake OpenAI images provider fast enough that a load generator measures the gateway, not it.

Run: .venv/bin/python bench/fast_upstream.py [--port P] [--image-size 1024]   (prints its /v1 base URL)

tests/fakes/upstream.py speaks every behaviour the tests need, and pays for it: it builds each
answer in Python threads (about 90 requests/s for a 1.5 MB answer). This one answers every POST
with the same prepared body, on uvloop with a hand-written HTTP/1.1 keep-alive parser, except
for one 33-byte PNG text chunk that counts the requests: every answer is a different image (a
content-addressed store cannot skip writing it), at the cost of one CRC and 44 base64 characters.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import struct
import sys
import zlib
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fakes.upstream import USAGE, photo_png, tiny_png  # noqa: E402

COUNTER_DIGITS = 12  # the chunk is padded with leading zeros to a multiple of 3 bytes


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


class Answer:
    """The prepared body, split around the counting chunk; both cuts fall on 3-byte boundaries, so
    the base64 of the whole is the base64 of the three parts joined."""

    def __init__(self, png: bytes) -> None:
        head, rest = png[:33], png[33:]  # the signature and IHDR: 33 bytes
        self.keyword = b"imagegate-bench\x00"
        size = len(_chunk(b"tEXt", self.keyword + b"0" * COUNTER_DIGITS))
        self.pad = (-size) % 3
        body = {"created": 1, "data": [{"b64_json": "@@@"}], "output_format": "png", "usage": USAGE}
        before, after = json.dumps(body).encode().split(b"@@@")
        self.before = before + base64.b64encode(head)
        self.after = base64.b64encode(rest) + after
        self.count = 0

    def next(self) -> bytes:
        self.count += 1
        text = self.keyword + str(self.count).zfill(COUNTER_DIGITS + self.pad).encode()
        middle = base64.b64encode(_chunk(b"tEXt", text))
        body = self.before + middle + self.after
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        return head + body


class Provider(asyncio.Protocol):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            marker = head.find(b"content-length:")
            length = int(head[marker + 15 : head.find(b"\r\n", marker)].strip() or 0) if marker >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            if head.startswith(b"get"):
                models = b'{"object":"list","data":[]}'
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(models), models)
                )
            else:
                self.transport.write(self.answer.next())


async def serve(port: int, image_size: int) -> None:
    png = photo_png(image_size, image_size) if image_size else tiny_png()
    answer = Answer(png)
    server = await asyncio.get_running_loop().create_server(lambda: Provider(answer), "127.0.0.1", port)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", flush=True)  # noqa: T201
    await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=0, help="answer a WxW PNG (0: an 8x8 one)")
    args = ap.parse_args()
    uvloop.run(serve(args.port, args.image_size))


if __name__ == "__main__":
    main()
