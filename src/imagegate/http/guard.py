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
    address = _address(host)
    if address is not None and any(address in net for net in request.app.state.settings.auth_exempt):
        guard = None
    return guard, counted_as(host), request.app.state.clock.now()


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The host as an IP address (`::ffff:a.b.c.d` is that IPv4 address); None: not one."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def counted_as(host: str) -> str:
    """Whose failures a host's are: an IPv6 address's /64 (one subscriber holds a whole /64, and
    per address it would have 2**64 fresh counts), any other host itself."""
    address = _address(host)
    if address is None:
        return host
    if isinstance(address, ipaddress.IPv6Address):
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
