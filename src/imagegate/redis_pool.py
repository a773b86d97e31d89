"""One way to connect to Redis, shared by the rate limiter and the circuit breakers."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry  # redis 8.2 warns when given the synchronous one
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def connect(url: str, *, socket_timeout_s: float = 2.0, max_connections: int = 64) -> Redis:
    """A client over a bounded pool: past max_connections, callers wait (up to the timeout) for a
    free connection instead of opening one per in-flight request. One retry, on connection errors
    only: it replaces a pooled connection that Redis closed (the command had not run). Timeouts
    are not retried, because a script may have run."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return Redis.from_pool(pool)
