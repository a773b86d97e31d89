"""The one way the gateway downloads a URL it was handed: a client's reference image
(flow/fetch_images.py) or a provider's answer (engines/upstream.py). Both are untrusted.

Every hop of a download is resolved once, each address checked (loopback, private, link-local,
multicast and reserved ranges are refused unless the caller allows them), and the connection made
to exactly those addresses: a DNS answer that changes between the check and the connection
(rebinding) cannot reach the gateway's own network. Redirects are followed by hand, each target
checked the same way, at most `max_redirects`. The body is read in chunks and cut at `max_bytes`;
the whole download, redirects included, must finish within `timeout_s`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from imagegate.config import Settings

Resolve = Callable[[str, int], Awaitable[list[str]]]
REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(Exception):
    """A download that failed; `str(exc)` says why, for an error message ("… answered HTTP 404")."""


class FetchRefused(FetchError):
    """The URL's host is (or resolves to) an address the gateway does not fetch from."""


class FetchInvalidURL(FetchError):
    """Not an http(s) URL with a host and a valid port."""


class FetchTooLarge(FetchError):
    """The body is larger than the cap."""


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: str) -> bool:
    """A global unicast address, and so is any IPv4 address an IPv6 one carries (mapped, 6to4,
    Teredo, NAT64): `::ffff:127.0.0.1` or `64:ff9b::7f00:1` reach loopback on some networks."""
    ip = ipaddress.ip_address(address)
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        carried = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64:
            carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return all(is_public(str(v4)) for v4 in carried if v4 is not None)
    return True


class _Pinned(AbstractResolver):
    """Answers for one host with the addresses already checked, and for nothing else."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self.host, self.addresses = host, addresses

    async def resolve(
        self,
        host: str,
        port: int = 0,
        family: socket.AddressFamily = socket.AF_INET,  # noqa: ARG002 - ours decide
    ) -> list[ResolveResult]:
        if host != self.host:
            raise OSError(f"not the checked host: {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class Fetcher:
    allow_private: bool
    max_bytes: int
    timeout_s: float
    max_redirects: int = 5
    resolve: Resolve = system_resolve  # the port a test replaces (no DNS on loopback)
    allowed: Callable[[str], bool] = field(default=is_public)  # an address the gateway may reach

    async def get(self, url: str) -> tuple[bytes, str | None]:
        """The body and declared content type of a 200 answer; FetchError otherwise."""
        _parse(url)  # an invalid URL is the caller's mistake, said before anything is tried
        try:
            async with asyncio.timeout(self.timeout_s):
                for _ in range(self.max_redirects + 1):
                    target = _parse(url)
                    addresses = await self._checked(target)
                    connector = aiohttp.TCPConnector(
                        resolver=_Pinned(target.host or "", addresses), use_dns_cache=False, force_close=True
                    )
                    async with (
                        aiohttp.ClientSession(
                            connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
                        ) as session,
                        session.get(target, allow_redirects=False) as resp,
                    ):
                        if resp.status in REDIRECTS and "location" in resp.headers:
                            url = str(target.join(URL(resp.headers["location"])))
                            continue
                        if resp.status != 200:
                            raise FetchError(f"the server answered HTTP {resp.status}")
                        return await self._body(resp), resp.headers.get("content-type", "").split(";")[
                            0
                        ] or None
                raise FetchError("too many redirects")
        except TimeoutError:
            raise FetchError(f"the download took longer than {self.timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise FetchError(type(exc).__name__) from exc

    async def post(self, url: str, data: bytes, headers: dict[str, str]) -> int:
        """POST `data` once (a webhook), to a checked address, no redirects followed; the status.
        FetchError when it could not be sent or no answer came within `timeout_s`."""
        target = _parse(url)
        try:
            async with asyncio.timeout(self.timeout_s):
                addresses = await self._checked(target)
                connector = aiohttp.TCPConnector(
                    resolver=_Pinned(target.host or "", addresses), use_dns_cache=False, force_close=True
                )
                async with (
                    aiohttp.ClientSession(
                        connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
                    ) as session,
                    session.post(target, data=data, headers=headers, allow_redirects=False) as resp,
                ):
                    await resp.content.read(64 * 1024)  # the receiver's answer is not kept
                    return resp.status
        except TimeoutError:
            raise FetchError(f"no answer within {self.timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise FetchError(type(exc).__name__) from exc

    async def _checked(self, target: URL) -> list[str]:
        host, port = target.host or "", target.port or 80
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
            addresses = [str(literal)]
        except ValueError:
            try:
                addresses = await self.resolve(host, port)
            except OSError as exc:
                raise FetchError("the host does not resolve") from exc
        if not addresses:
            raise FetchError("the host does not resolve")
        if not self.allow_private and not all(self.allowed(a) for a in addresses):
            raise FetchRefused("private, loopback or link-local addresses are not fetched")
        return addresses

    async def _body(self, resp: aiohttp.ClientResponse) -> bytes:
        declared = resp.content_length
        if declared is not None and declared > self.max_bytes:
            raise FetchTooLarge(f"larger than {self.max_bytes} bytes")
        chunks: list[bytes] = []
        total = 0
        async for chunk in resp.content.iter_chunked(1 << 16):
            total += len(chunk)
            if total > self.max_bytes:
                raise FetchTooLarge(f"larger than {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _parse(url: str) -> URL:
    try:
        target = URL(url)
        valid = target.scheme in ("http", "https") and bool(target.host) and 0 < (target.port or 80) < 65536
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise FetchInvalidURL("not a valid URL")
    return target


def is_http_url(url: str) -> bool:
    """An http(s) URL with a host and a valid port (whether it may be reached is checked later)."""
    try:
        _parse(url)
    except FetchInvalidURL:
        return False
    return True


def client_fetcher(settings: Settings) -> Fetcher:
    """For reference images a client names by URL."""
    return Fetcher(
        allow_private=settings.fetch_private_urls,
        max_bytes=settings.max_image_bytes,
        timeout_s=settings.fetch_timeout_s,
    )


def webhook_sender(settings: Settings) -> Fetcher:
    """For webhooks: a client's URL, under the same guards as its image URLs."""
    return Fetcher(
        allow_private=settings.fetch_private_urls, max_bytes=64 * 1024, timeout_s=settings.webhook_timeout_s
    )


def provider_fetcher(settings: Settings) -> Fetcher:
    """For the image URLs in a provider's answer: as untrusted as a client's."""
    return Fetcher(
        allow_private=settings.fetch_private_provider_urls,
        max_bytes=settings.max_provider_image_bytes,
        timeout_s=settings.fetch_timeout_s,
    )
