"""The Redis rate limiter: one Lua script checks every limit and consumes them all atomically,
so any number of gateway replicas sharing one Redis share exact counters.

Keys, per subject (the hash tag keeps one subject's keys in one Redis Cluster slot):
  {prefix}{subject}:rpm        hash {t: tokens, ts: seconds}  expires after 2 idle minutes (full by then)
  {prefix}{subject}:ipm        likewise, for images
  {prefix}{subject}:rpd:<day>  counter for one UTC day        expires after 2 days
  {prefix}{subject}:leases     sorted set lease -> expiry      expires lease TTL + 1 min after last use
Key TTLs run on Redis's clock; every limit decision uses the caller's ``now``, never Redis TIME.
"""

from __future__ import annotations

import uuid
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from imagegate.limits.base import (
    DAY_S,
    EARLY_S,
    Decision,
    LimiterUnavailable,
    Limits,
    check_images,
    decide,
    utc_day,
)
from imagegate.redis_pool import connect

BUCKET_TTL_MS = 120_000
DAY_TTL_MS = 2 * DAY_S * 1000
LEASES_GRACE_MS = 60_000

# The arithmetic of base.refill() and base.admits(), operation for operation, so both backends
# agree bit for bit. Floats are stored with 17 significant digits: they round-trip exactly.
ACQUIRE_LUA = """
-- KEYS: 1 request bucket, 2 image bucket, 3 day counter, 4 leases (sorted set: lease -> expiry)
-- ARGV: 1 now, 2 rpm, 3 ipm, 4 rpd, 5 concurrency (0 = unlimited), 6 images, 7 lease id,
--       8 lease expiry, 9 early_s, 10 bucket ttl ms, 11 day ttl ms, 12 leases ttl ms
-- Returns {failed mask, request tokens, image tokens}; tokens after consumption, as strings.
local now = tonumber(ARGV[1])
local rpm, ipm = tonumber(ARGV[2]), tonumber(ARGV[3])
local rpd, conc = tonumber(ARGV[4]), tonumber(ARGV[5])
local images, early = tonumber(ARGV[6]), tonumber(ARGV[9])

local function fmt(x) return string.format('%.17g', x) end

local function level(key, cap)
  local s = redis.call('HMGET', key, 't', 'ts')
  local tokens, ts = tonumber(s[1]), tonumber(s[2])
  if tokens == nil or ts == nil then return cap, now end
  if now > ts then return math.min(cap, tokens + (now - ts) * cap / 60), now end
  return math.min(cap, tokens), ts
end

local function admits(tokens, cost, cap) return tokens + cap / 60 * early >= cost end

local failed = 0
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
  if redis.call('ZCARD', KEYS[4]) >= conc then failed = failed + 1 end
end
local rt, rts, it, its = 0, 0, 0, 0
if rpm > 0 then
  rt, rts = level(KEYS[1], rpm)
  if not admits(rt, 1, rpm) then failed = failed + 2 end
end
if ipm > 0 then
  it, its = level(KEYS[2], ipm)
  if not admits(it, images, ipm) then failed = failed + 4 end
end
if rpd > 0 and (tonumber(redis.call('GET', KEYS[3])) or 0) >= rpd then failed = failed + 8 end

if failed == 0 then
  if rpm > 0 then
    rt = rt - 1
    redis.call('HSET', KEYS[1], 't', fmt(rt), 'ts', fmt(rts))
    redis.call('PEXPIRE', KEYS[1], ARGV[10])
  end
  if ipm > 0 then
    it = it - images
    redis.call('HSET', KEYS[2], 't', fmt(it), 'ts', fmt(its))
    redis.call('PEXPIRE', KEYS[2], ARGV[10])
  end
  if rpd > 0 then
    redis.call('INCR', KEYS[3])
    redis.call('PEXPIRE', KEYS[3], ARGV[11])
  end
  if conc > 0 then
    redis.call('ZADD', KEYS[4], ARGV[8], ARGV[7])
    redis.call('PEXPIRE', KEYS[4], ARGV[12])
  end
end
return {failed, fmt(rt), fmt(it)}
"""


class RedisRateLimiter:
    """A RateLimiter shared by every process that uses the same Redis and prefix.

    Connection errors and timeouts raise LimiterUnavailable; nothing falls back to local counters.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "imagegate:",
        lease_ttl_s: float = 900,
        *,
        socket_timeout_s: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        self.prefix = prefix
        self.lease_ttl_s = lease_ttl_s
        # A retried command (connection errors only) reuses its arguments: an acquire keeps its
        # lease id, so at worst it takes one extra token and never leaks a concurrency slot.
        self._redis = connect(url, socket_timeout_s=socket_timeout_s, max_connections=max_connections)
        # EVALSHA, falling back to SCRIPT LOAD + EVALSHA when Redis does not know the script.
        self._acquire = self._redis.register_script(ACQUIRE_LUA)

    def _key(self, subject: str, suffix: str) -> str:
        return f"{self.prefix}{{{subject}}}:{suffix}"

    async def acquire(self, subject: str, limits: Limits, *, images: int, now: float) -> Decision:
        check_images(images)
        lease = uuid.uuid4().hex
        keys = [
            self._key(subject, "rpm"),
            self._key(subject, "ipm"),
            self._key(subject, f"rpd:{utc_day(now)}"),
            self._key(subject, "leases"),
        ]
        args: list[Any] = [
            repr(float(now)),
            limits.rpm or 0,
            limits.ipm or 0,
            limits.rpd or 0,
            limits.concurrency or 0,
            images,
            lease,
            repr(float(now + self.lease_ttl_s)),
            repr(EARLY_S),
            BUCKET_TTL_MS,
            DAY_TTL_MS,
            int(self.lease_ttl_s * 1000) + LEASES_GRACE_MS,
        ]
        try:
            failed, request_tokens, image_tokens = await self._acquire(keys=keys, args=args)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return decide(
            limits,
            images=images,
            now=now,
            failed=int(failed),
            request_tokens=float(request_tokens) if limits.rpm is not None else None,
            image_tokens=float(image_tokens) if limits.ipm is not None else None,
            lease=lease if not failed and limits.concurrency is not None else None,
        )

    async def release(self, subject: str, lease: str) -> None:
        try:
            await self._redis.zrem(self._key(subject, "leases"), lease)
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def renew(self, subject: str, lease: str, now: float) -> None:
        key = self._key(subject, "leases")
        try:
            score = await self._redis.zscore(key, lease)
            if score is not None and float(score) > now:
                # XX: only a lease still there (a release in between is not undone).
                await self._redis.zadd(key, {lease: repr(float(now + self.lease_ttl_s))}, xx=True)
                await self._redis.pexpire(key, int(self.lease_ttl_s * 1000) + LEASES_GRACE_MS)
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        await self._redis.aclose()


def _unavailable(exc: RedisError) -> LimiterUnavailable:
    # The message never carries the URL (it may hold a password).
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return LimiterUnavailable("rate-limit store unreachable")
    return LimiterUnavailable(f"rate-limit store failed ({type(exc).__name__})")
