"""Wrong keys per client address (limits/failures.py), on the routes that take the admin key:
the admin API (and /metrics) and the console's sign-in. The address is the connection's peer, or
what a trusted proxy says it is (uvicorn's `--forwarded-allow-ips`, by default the loopback).

Addresses in `IMAGEGATE_AUTH_EXEMPT` (default: the loopback) are never counted nor refused: an
operator locked out from outside can always sign in on the machine itself.
"""

from __future__ import annotations

import ipaddress

from fastapi import Request

from imagegate.limits.failures import FailedAttempts, too_many


def _guard(request: Request) -> tuple[FailedAttempts | None, str, float]:
    host = request.client.host if request.client is not None else "unknown"
    guard: FailedAttempts | None = request.app.state.failed_attempts
    if guard is not None and _exempt(host, request.app.state.settings.auth_exempt):
        guard = None
    return guard, counted_as(host), request.app.state.clock.now()


def _exempt(host: str, networks: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


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


async def admitted(request: Request, right_key: bool) -> None:
    """After the key was compared: the right key from a blocked address, or a wrong key past the
    limit, is refused (429). A wrong key within the limit is counted and left to the caller's 401."""
    guard, address, now = _guard(request)
    if guard is None:
        return
    wait = await (guard.blocked_for(address, now) if right_key else guard.failed(address, now))
    if wait > 0:
        raise too_many(wait)
