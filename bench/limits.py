"""Rate-limiter cost: acquire + release per second, and its latency, in-process vs Redis.

Run: .venv/bin/python bench/limits.py [--ops N] [--redis-url URL]
Each operation is one acquire() with every limit set (none binds) and the release() of its lease,
what a request pays for admission. Prints one table; every figure is measured in this run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import anyio
from _common import quantile

from imagegate.limits import Limits, LocalRateLimiter, RateLimiter
from imagegate.limits.redis import RedisRateLimiter
from tests.services import redis_available, redis_prefix

LIMITS = Limits(rpm=10**9, rpd=10**12, ipm=10**9, concurrency=10**6)
CONCURRENCY = (1, 32)


async def run(limiter: RateLimiter, ops: int, coroutines: int) -> tuple[float, list[float]]:
    """(ops per second, per-operation latencies in seconds) for ops spread over coroutines."""
    latencies: list[float] = []

    async def worker(w: int) -> None:
        subject = f"bench-{w % 8}"
        for _ in range(ops // coroutines):
            start = time.perf_counter()
            decision = await limiter.acquire(subject, LIMITS, images=1, now=time.time())
            assert decision.allowed and decision.lease is not None
            await limiter.release(subject, decision.lease)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for w in range(coroutines):
            tg.start_soon(worker, w)
    return len(latencies) / (time.perf_counter() - start), latencies


async def measure(make: Callable[[], RateLimiter], ops: int) -> dict[int, tuple[float, float, float]]:
    results = {}
    for coroutines in CONCURRENCY:
        limiter = make()
        try:
            await run(limiter, min(ops, 1000), coroutines)  # warm up: connections, script load
            rate, latencies = await run(limiter, ops, coroutines)
        finally:
            await limiter.close()
        results[coroutines] = (rate, quantile(latencies, 0.50) * 1e3, quantile(latencies, 0.99) * 1e3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=20_000, help="operations per measurement")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    table = {"memory": anyio.run(measure, LocalRateLimiter, args.ops)}
    if redis_available(args.redis_url):
        with redis_prefix(args.redis_url, "bench-limits") as prefix:
            table["redis"] = anyio.run(
                measure, lambda: RedisRateLimiter(args.redis_url, prefix=prefix), args.ops
            )

    backends = list(table)
    print(f"acquire + release, {args.ops} operations each (latency in ms)")
    print(f"{'coroutines':>10}" + "".join(f"  {b + ' ops/s':>14} {'p50':>7} {'p99':>7}" for b in backends))
    for coroutines in CONCURRENCY:
        row = f"{coroutines:>10}"
        for b in backends:
            rate, p50, p99 = table[b][coroutines]
            row += f"  {rate:>14,.0f} {p50:>7.3f} {p99:>7.3f}"
        print(row)
    if "redis" not in table:
        print(f"(no Redis at {args.redis_url}: redis column skipped)")


if __name__ == "__main__":
    main()
