"""The sizes the schema holds (storage/tables.py), stated once: the tables use them, and every
place a value enters (the CLI and admin API through accounts.py and channels.py, request headers
and bodies) checks against them, so that nothing a client or an admin sends can overflow a column
on SQLite or PostgreSQL (a 500, after the work was done)."""

from __future__ import annotations

from imagegate.images.tokens import MAX_TOKENS as _MAX_TOKENS
from imagegate.pricing import MAX_PRICE_MICROS as _MAX_PRICE_MICROS

INT32_MAX = 2**31 - 1  # Integer columns: ids, limits, multiplier_ppm, priority, weight
INT64_MAX = 2**63 - 1  # BigInteger columns (money); SQLite turns a sum past it into a REAL
MAX_BALANCE_MICROS = 10**15  # $1,000,000,000: far inside BIGINT, and SQLite never turns it REAL
# A price (micro-dollars per 1M tokens, or per image, pricing.py) and a token count a provider may
# report (images/tokens.py): stated beside the code that the engines use, which may not import storage.
MAX_PRICE_MICROS = _MAX_PRICE_MICROS
MAX_TOKENS = _MAX_TOKENS
KEY_NAME = 200
TIER = 32
CHANNEL_NAME = 100
BASE_URL = 500
WEBHOOK_URL = 2000
PROVIDER_KIND = 32  # channels.provider: engines/providers.py
CHANNEL_OPTIONS = 8_000  # channels.options and .capabilities: JSON objects, as text
MODEL_NAME = 100  # usage_records.model
# usage_records.engine: "upstream:<channel name>" whole (migration 0005 widened it from 50).
ENGINE_NAME = len("upstream:") + CHANNEL_NAME
ERROR_CODE = 64
REQUEST_ID = 64
IDEMPOTENCY_KEY = 255
USER = 256  # the `user` / `safety_identifier` of a request (kept in the usage record's params)
MAX_ID_DIGITS = len(str(INT32_MAX))


def fit(value: str | None, size: int) -> str | None:
    """`value` cut to a column's size (a name the schema cannot hold whole, e.g. an engine's)."""
    return value[:size] if value is not None else None


def storable(value: str) -> bool:
    """Whether a text column can hold `value` at all: PostgreSQL refuses NUL characters."""
    return "\x00" not in value


def as_id(ident: str) -> int | None:
    """A row id written in ASCII digits that an Integer column can hold, else None (a name or a
    prefix: `²` is a digit to str.isdigit, and a 26-digit number overflows PostgreSQL)."""
    if ident.isascii() and ident.isdigit() and len(ident) <= MAX_ID_DIGITS and int(ident) <= INT32_MAX:
        return int(ident)
    return None
