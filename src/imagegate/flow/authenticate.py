"""Stage: bearer token -> the caller's ApiKey, or 401 invalid_api_key.

Contract: `authenticate(authorization_header, keys)` returns an active ApiKey; a missing,
malformed, unknown or revoked key raises AuthenticationFailed (the message masks the key).
The lookup is the KeyLookup port's (over SQL: a read, in place on SQLite in WAL mode).
"""

from __future__ import annotations

from imagegate.errors import AuthenticationFailed
from imagegate.flow.ports import KeyLookup
from imagegate.storage.keys import ApiKey


async def authenticate(authorization: str | None, keys: KeyLookup) -> ApiKey:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed(
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    key = await keys.authenticate(token)
    if key is None:
        raise AuthenticationFailed(
            f"Incorrect API key provided: {mask(token)}. Ask this gateway's operator for a key "
            "(imagegate keys create)."
        )
    return key


def mask(token: str) -> str:
    if len(token) <= 12:
        return "*" * len(token)
    return f"{token[:6]}{'*' * 8}{token[-4:]}"
