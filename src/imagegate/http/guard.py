"""Wrong keys per client address (limits/failures.py), on the routes that take the admin key:
the admin API and the console's sign-in. The address is the connection's peer, or what a
trusted proxy says it is (uvicorn's `--forwarded-allow-ips`)."""

from __future__ import annotations

import ipaddress

from fastapi import Request

from imagegate.limits.failures import FailedAttempts, too_many


def _guard(request: Request) -> tuple[FailedAttempts | None, str, float]:
    host = request.client.host if request.client is not None else "unknown"
    return request.app.state.failed_attempts, counted_as(host), request.app.state.clock.now()


def counted_as(host: str) -> str:
    """Whose failures a host's are: an IPv6 address's /64 (one subscriber holds a whole /64, and
    per address it would have 2**64 fresh counts), any other host itself."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is that IPv4 address
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


async def refuse_if_blocked(request: Request) -> None:
    """429 before any key is looked at, while the caller's address is blocked."""
    guard, address, now = _guard(request)
    if guard is not None and (wait := await guard.blocked_for(address, now)) > 0:
        raise too_many(wait)


async def count_failure(request: Request) -> None:
    guard, address, now = _guard(request)
    if guard is not None:
        await guard.failed(address, now)
