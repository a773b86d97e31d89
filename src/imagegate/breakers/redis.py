"""The Redis circuit breaker: Lua scripts grant the half-open probe and record outcomes atomically,
so every gateway replica sharing one Redis sees one circuit per name and lets one probe through.

One hash per name, ``{prefix}breaker:{name}``:
  oa, pa          opened_at, probe_at (absent when closed / no probe out)
  cause, cf       why it opened (base.CAUSE_*), consecutive failures
  or, of          window requests and failures when it opened
  n<i> r<i> f<i>  ring slot i (0-9): bucket number, requests, failures
It expires KEY_TTL_MS (at least a day) after its last write, so a name no longer used (a deleted
channel) leaves nothing behind; a run of consecutive failures older than that is forgotten.
Key TTLs run on Redis's clock; every breaker decision uses the caller's ``now``, never Redis TIME.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from imagegate.breakers.base import (
    BUCKETS,
    CAUSE_CONSECUTIVE,
    CAUSE_PROBE,
    CAUSE_RATE,
    BreakerConfig,
    BreakerState,
    BreakerUnavailable,
    Circuit,
    view,
)
from imagegate.redis_pool import connect

DAY_MS = 86_400_000

ALLOW_LUA = """
-- KEYS: 1 circuit hash. ARGV: 1 now, 2 cooldown_s, 3 key ttl ms. Returns 1 (allowed) or 0.
local oa = tonumber(redis.call('HGET', KEYS[1], 'oa'))
if oa == nil then return 1 end
local now, cooldown = tonumber(ARGV[1]), tonumber(ARGV[2])
if now < oa + cooldown then return 0 end
local pa = tonumber(redis.call('HGET', KEYS[1], 'pa'))
if pa ~= nil and now < pa + cooldown then return 0 end
redis.call('HSET', KEYS[1], 'pa', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# The arithmetic of local.LocalCircuitBreaker.record() and base.window_totals()/opening_cause(),
# operation for operation (Lua numbers are doubles, like Python floats), so both backends agree.
RECORD_LUA = """
-- KEYS: 1 circuit hash.
-- ARGV: 1 now, 2 ok (1/0), 3 failure_threshold, 4 bucket_s, 5 failure_rate, 6 min_requests,
--       7 cooldown_s, 8 key ttl ms, 9 buckets, 10-12 causes (consecutive, rate, probe)
-- Returns the hash after the record, as HGETALL does.
local key = KEYS[1]
local now, ok = tonumber(ARGV[1]), ARGV[2] == '1'
local threshold, bucket_s, rate = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local min_requests, cooldown, nb = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[9])

local function fmt(x) return string.format('%.17g', x) end

local oa = tonumber(redis.call('HGET', key, 'oa'))
if oa ~= nil then
  if now < oa + cooldown then return redis.call('HGETALL', key) end  -- open: not counted
  if ok then
    redis.call('DEL', key)
    return {}
  end
  redis.call('HSET', key, 'oa', ARGV[1], 'cause', ARGV[12])
  redis.call('HDEL', key, 'pa')
  redis.call('PEXPIRE', key, ARGV[8])
  return redis.call('HGETALL', key)
end

local number = math.floor(now / bucket_s)
local slot = number % nb
local s = redis.call('HMGET', key, 'n' .. slot, 'r' .. slot, 'f' .. slot, 'cf')
local held, requests, failures = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3]) or 0
if held == nil or held < number then held, requests, failures = number, 0, 0 end
requests = requests + 1
if not ok then failures = failures + 1 end
local cf = 0
if not ok then cf = (tonumber(s[4]) or 0) + 1 end
redis.call('HSET', key, 'n' .. slot, fmt(held), 'r' .. slot, requests, 'f' .. slot, failures, 'cf', cf)

local oldest = number - nb + 1
local total, failed = 0, 0
for i = 0, nb - 1 do
  local b = redis.call('HMGET', key, 'n' .. i, 'r' .. i, 'f' .. i)
  local n = tonumber(b[1])
  if n ~= nil and n >= oldest then
    total, failed = total + tonumber(b[2]), failed + tonumber(b[3])
  end
end
local cause = nil
if cf >= threshold then cause = ARGV[10]
elseif total >= min_requests and failed / total >= rate then cause = ARGV[11] end
if cause ~= nil then
  redis.call('HSET', key, 'oa', ARGV[1], 'cause', cause, 'or', total, 'of', failed)
end
redis.call('PEXPIRE', key, ARGV[8])
return redis.call('HGETALL', key)
"""


class RedisCircuitBreaker:
    """A CircuitBreaker shared by every process that uses the same Redis and prefix.

    Connection errors and timeouts raise BreakerUnavailable; nothing falls back to local state.
    """

    def __init__(
        self,
        url: str,
        config: BreakerConfig | None = None,
        prefix: str = "imagegate:",
        *,
        socket_timeout_s: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        self.config = config or BreakerConfig()
        self.prefix = prefix
        # Long enough to outlive any window, cooldown and silent probe, at least a day.
        self.key_ttl_ms = max(DAY_MS, int(2 * (self.config.window_s + 2 * self.config.cooldown_s) * 1000))
        self._redis = connect(url, socket_timeout_s=socket_timeout_s, max_connections=max_connections)
        self._allow = self._redis.register_script(ALLOW_LUA)
        self._record = self._redis.register_script(RECORD_LUA)

    def _key(self, name: str) -> str:
        return f"{self.prefix}breaker:{name}"

    async def allow(self, name: str, now: float) -> bool:
        args: list[Any] = [repr(float(now)), repr(float(self.config.cooldown_s)), self.key_ttl_ms]
        try:
            return bool(int(await self._allow(keys=[self._key(name)], args=args)))
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def record(self, name: str, ok: bool, now: float) -> BreakerState:
        c = self.config
        args = [
            repr(float(now)),
            1 if ok else 0,
            c.failure_threshold,
            repr(float(c.bucket_s)),
            repr(float(c.failure_rate)),
            c.min_requests,
            repr(float(c.cooldown_s)),
            self.key_ttl_ms,
            BUCKETS,
            CAUSE_CONSECUTIVE,
            CAUSE_RATE,
            CAUSE_PROBE,
        ]
        try:
            flat = await self._record(keys=[self._key(name)], args=args)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        return view(_circuit(fields), now, c)

    async def state(self, name: str, now: float) -> BreakerState:
        try:
            fields: dict[bytes, bytes] = await self._redis.hgetall(self._key(name))  # type: ignore[assignment]
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return view(_circuit(fields), now, self.config)

    async def reset(self, name: str) -> None:
        try:
            await self._redis.delete(self._key(name))
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        await self._redis.aclose()


def _circuit(fields: dict[bytes, bytes]) -> Circuit:
    """Parse the hash (as HGETALL returns it) into the record both backends share."""
    text = {k.decode(): v.decode() for k, v in fields.items()}

    def number(field: str) -> float | None:
        return float(text[field]) if field in text else None

    buckets: dict[int, tuple[int, int, int]] = {}
    for slot in range(BUCKETS):
        if f"n{slot}" in text:
            buckets[slot] = (int(float(text[f"n{slot}"])), int(text[f"r{slot}"]), int(text[f"f{slot}"]))
    return Circuit(
        opened_at=number("oa"),
        probe_at=number("pa"),
        cause=int(text.get("cause", 0)),
        consecutive=int(text.get("cf", 0)),
        opened_requests=int(text.get("or", 0)),
        opened_failures=int(text.get("of", 0)),
        buckets=buckets,
    )


def _unavailable(exc: RedisError) -> BreakerUnavailable:
    # The message never carries the URL (it may hold a password).
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return BreakerUnavailable("circuit-breaker store unreachable")
    return BreakerUnavailable(f"circuit-breaker store failed ({type(exc).__name__})")
