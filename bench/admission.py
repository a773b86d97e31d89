"""Admission cost per request: SQLite + in-process limits vs PostgreSQL + Redis, side by side.

Run: .venv/bin/python bench/admission.py [--requests N] [--http-requests M]
         [--postgres-url URL] [--redis-url URL]

Part 1 calls the flow's own admission stages, with anyio, as ImageFlow.handle does for one
non-streamed request: authenticate (KeyRepo.authenticate by secret) -> rate_limit.admit (limits_for
a `free` key whose overrides are too large to deny) -> reserve_quota.reserve -> credits.settle (the
reserved amount, as a non-streamed request settles) -> the lease's release. N requests at 1
coroutine, 2N at 16 (one key per coroutine).
Part 2 times POST /v1/images/generations (64x64, low, jpeg) on a real server per setup, with that
key and with an `internal` key, interleaved; the difference is what rate limiting adds.
Prints tables only; every figure is measured in this run. Schemas, Redis keys and temp dirs are
removed on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
from _common import quantile
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from imagegate.clock import SystemClock
from imagegate.config import Settings
from imagegate.domain import ImageJob
from imagegate.flow import rate_limit, reserve_quota
from imagegate.flow.authenticate import authenticate
from imagegate.http.app import create_app
from imagegate.http.serve import serve_in_thread
from imagegate.images.tokens import job_usage
from imagegate.limits import Limits, RateLimiter, build_rate_limiter
from imagegate.pricing import price_for
from imagegate.storage.db import journal_is_wal, make_engine, migrate
from imagegate.storage.keys import KeyRepo
from imagegate.storage.ledger import Ledger
from imagegate.storage.runner import Database
from imagegate.storage.stores import SqlCredits, SqlKeys
from tests.services import pg_schema, redis_available, redis_prefix

# `free`-tier key whose overrides never deny: every limit is checked and consumed, none binds.
HUGE = {"rpm": 10**9, "rpd": 10**9, "ipm": 10**9, "concurrency": 10**6}
CREDIT = 10**15  # micro-dollars: never runs out
CONCURRENCY = (1, 16)
PROMPT = "a red fox in a blue forest"
BODY = {"model": "gpt-image-1", "prompt": PROMPT, "size": "64x64", "quality": "low", "output_format": "jpeg"}
STAGES = ("authenticate", "rate limit", "reserve", "settle")


@dataclass(frozen=True)
class Setup:
    name: str  # "a" or "b"
    label: str
    database_url: str  # bench part 1
    server_database_url: str | None  # part 2 (None: sqlite in the server's data dir)
    redis_url: str | None
    prefix: str  # Redis key prefix (unused without Redis)


@dataclass
class Figures:
    """Part 1 for one setup: (req/s, p50 ms, p99 ms) per coroutine count, stage medians, bare acquire."""

    by_coroutines: dict[int, tuple[float, float, float]]
    stages: list[float]  # median ms per STAGES entry, at 1 coroutine
    bare_acquire: float  # median ms


# --- part 1: the admission stages, called directly ------------------------------------------


@dataclass
class Bench:
    keys: KeyRepo
    ledger: Ledger
    limiter: RateLimiter
    settings: Settings
    secrets: list[str]
    price: int  # what the flow quotes for the 64x64 low job on a 1x key

    def __post_init__(self) -> None:
        # Key lookups in place on SQLite (WAL), the writes on anyio's worker threads: each request
        # here is measured alone, without ImageFlow's in-place writes for a lone request.
        self.db = Database(sqlite=False, wal=journal_is_wal(self.keys.engine))

    async def one(self, secret: str, stages: list[list[float]] | None) -> float:
        """One request's admission and settlement; returns its latency in seconds."""
        clock = self.keys.clock
        t0 = time.perf_counter()
        key = await authenticate(f"Bearer {secret}", SqlKeys(self.keys, self.db))
        t1 = time.perf_counter()
        decision = await rate_limit.admit(
            self.limiter,
            key,
            rate_limit.limits_for(key, self.settings.tiers),
            images=1,
            now=clock.now(),
            fail_open=self.settings.rate_limit_fail_open,
        )
        rate_limit.headers(decision)
        t2 = time.perf_counter()
        credits = SqlCredits(self.ledger, self.db)
        reservation = await reserve_quota.reserve(
            credits, key.id, self.price, f"req_{uuid.uuid4().hex}", self.settings.reservation_timeout_s
        )
        t3 = time.perf_counter()
        await credits.settle(reservation, self.price)
        t4 = time.perf_counter()
        assert decision.lease is not None
        await self.limiter.release(str(key.id), decision.lease)
        t5 = time.perf_counter()
        if stages is not None:
            for i, dt in enumerate((t1 - t0, (t2 - t1) + (t5 - t4), t3 - t2, t4 - t3)):
                stages[i].append(dt)
        return t5 - t0

    async def run(
        self, requests: int, coroutines: int, stages: list[list[float]] | None = None
    ) -> tuple[float, list[float]]:
        """(requests per second, latencies in seconds) for `requests` spread over coroutines."""
        latencies: list[float] = []

        async def worker(w: int) -> None:
            secret = self.secrets[w % len(self.secrets)]
            for _ in range(requests // coroutines):
                latencies.append(await self.one(secret, stages))

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for w in range(coroutines):
                tg.start_soon(worker, w)
        return len(latencies) / (time.perf_counter() - start), latencies

    async def bare_acquire(self, ops: int) -> list[float]:
        """acquire() with Limits() (the `internal` tier): the limiter call every key still pays."""
        out = []
        for _ in range(ops):
            t = time.perf_counter()
            await self.limiter.acquire("bench-internal", Limits(), images=1, now=time.time())
            out.append(time.perf_counter() - t)
        return out


def flow_price(settings: Settings) -> int:
    job = ImageJob(
        model="gpt-image-1", prompt=PROMPT, width=64, height=64, quality="low", output_format="jpeg"
    )
    usage = job_usage(prompt=PROMPT, quality="low", width=64, height=64, n=1)
    return reserve_quota.quote(
        price_for(settings.prices, job.model), usage, job, 1, settings.tiers["free"].multiplier_ppm
    )[1]


def measure_admission(setup: Setup, requests: int, data_dir: Path) -> Figures:
    engine = make_engine(setup.database_url)
    try:
        migrate(engine)
        clock = SystemClock()
        settings = Settings(data_dir=data_dir, create_initial_key=False)
        keys = KeyRepo(engine, clock)
        secrets = [
            keys.create(f"bench-{i}", "free", credit_micros=CREDIT, **HUGE)[1]
            for i in range(max(CONCURRENCY))
        ]

        async def go() -> Figures:
            limiter = build_rate_limiter(
                setup.redis_url, prefix=setup.prefix, lease_ttl_s=settings.reservation_timeout_s
            )
            bench = Bench(keys, Ledger(engine, clock), limiter, settings, secrets, flow_price(settings))
            try:
                out = Figures({}, [], 0.0)
                for coroutines in CONCURRENCY:
                    n = requests * (1 if coroutines == 1 else 2)
                    await bench.run(min(n // 4, 50 * coroutines), coroutines)  # warm-up: pools, script
                    stages: list[list[float]] | None = [[] for _ in STAGES] if coroutines == 1 else None
                    rate, lat = await bench.run(n, coroutines, stages)
                    p50, p99 = quantile(lat, 0.5) * 1e3, quantile(lat, 0.99) * 1e3
                    out.by_coroutines[coroutines] = (rate, p50, p99)
                    if stages is not None:
                        out.stages = [statistics.median(s) * 1e3 for s in stages]
                out.bare_acquire = statistics.median(await bench.bare_acquire(1000)) * 1e3
                return out
            finally:
                await limiter.close()

        return anyio.run(go)
    finally:
        engine.dispose()


# --- part 2: a real server, free-but-huge key vs internal key ------------------------------


def measure_http(setup: Setup, requests: int, data_dir: Path) -> dict[str, float]:
    settings = Settings(
        data_dir=data_dir,
        database_url=setup.server_database_url,
        redis_url=setup.redis_url,
        redis_prefix=setup.prefix + "srv:",
        create_initial_key=False,
    )
    with serve_in_thread(create_app(settings)) as base:
        engine = make_engine(settings.resolved_database_url)
        try:
            repo = KeyRepo(engine, SystemClock())
            limited = repo.create("bench-free-huge", "free", credit_micros=CREDIT, **HUGE)[1]
            internal = repo.create("bench-internal", "internal", credit_micros=CREDIT)[1]
        finally:
            engine.dispose()
        times: dict[str, list[float]] = {limited: [], internal: []}
        with httpx.Client(base_url=base, timeout=60) as client:

            def post(secret: str) -> float:
                t = time.perf_counter()
                r = client.post(
                    "/v1/images/generations", json=BODY, headers={"Authorization": f"Bearer {secret}"}
                )
                dt = time.perf_counter() - t
                r.raise_for_status()
                return dt

            for _ in range(20):  # warm-up: connections, tokenizer, font, script load
                post(limited)
                post(internal)
            for i in range(requests):  # interleaved, alternating order: drift hits both alike
                for secret in (limited, internal) if i % 2 == 0 else (internal, limited):
                    times[secret].append(post(secret))
    paired = [a - b for a, b in zip(times[limited], times[internal], strict=True)]
    return {
        "limited": statistics.median(times[limited]) * 1e3,
        "internal": statistics.median(times[internal]) * 1e3,
        "limited_p90": quantile(times[limited], 0.9) * 1e3,
        "internal_p90": quantile(times[internal], 0.9) * 1e3,
        "paired": statistics.median(paired) * 1e3,
    }


# --- setups and clean-up --------------------------------------------------------------------


def postgres_settings(url: str) -> str | None:
    """'PostgreSQL 15.2, synchronous_commit=on' (what each commit waits for), or None if unreachable."""
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            version = conn.execute(text("show server_version")).scalar_one().split()[0]
            sync = conn.execute(text("show synchronous_commit")).scalar_one()
        return f"PostgreSQL {version} (synchronous_commit={sync})"
    except OperationalError:
        return None
    finally:
        engine.dispose()


# --- report ----------------------------------------------------------------------------------


def ratio(b: float, a: float) -> str:
    return f"{b / a:.2f}x" if a else "-"


def report(
    setups: list[Setup], adm: dict[str, Figures], http: dict[str, dict[str, float]], args: argparse.Namespace
) -> None:
    names = [s.name for s in setups]
    print("setups: " + "; ".join(f"({s.name}) {s.label}" for s in setups))
    print(
        f"\n== admission path, called directly: {args.requests} requests at 1 coroutine, "
        f"{2 * args.requests} at 16 (latency in ms) =="
    )
    header = f"{'coroutines':>10}" + "".join(f"  {n + ' req/s':>9} {'p50':>7} {'p99':>7}" for n in names)
    if len(names) == 2:
        header += f"  {'b/a req/s':>9} {'p50':>6} {'p99':>6}"
    print(header)
    for c in CONCURRENCY:
        row = f"{c:>10}"
        figs = [adm[n].by_coroutines[c] for n in names]
        for rate, p50, p99 in figs:
            row += f"  {rate:>9,.0f} {p50:>7.3f} {p99:>7.3f}"
        if len(names) == 2:
            (ra, pa, qa), (rb, pb, qb) = figs
            row += f"  {ratio(rb, ra):>9} {ratio(pb, pa):>6} {ratio(qb, qa):>6}"
        print(row)
    print(
        "each request: authenticate (KeyRepo.authenticate by secret: in place on SQLite WAL, else a "
        "worker thread) + rate_limit.admit\n(limits_for a free key with rpm/rpd/ipm=1e9, "
        "concurrency=1e6: every "
        "limit checked, none denies)\n+ reserve_quota.reserve + credits.settle (charges the reserved "
        "amount: no refund row) + the lease's release.\n16 coroutines use 16 keys; one event loop, "
        "anyio's worker threads; the DB engines are make_engine's (the server's pools)."
    )

    print("\n== per stage, median ms at 1 coroutine ==")
    print(f"{'stage':<34}" + "".join(f"{n:>9}" for n in names) + (f"{'b/a':>8}" if len(names) == 2 else ""))
    labels = {"rate limit": "rate limit (acquire + release)"}
    rows = [(labels.get(stage, stage), [adm[n].stages[i] for n in names]) for i, stage in enumerate(STAGES)]
    rows.append(("acquire(Limits()) (the flow skips it)", [adm[n].bare_acquire for n in names]))
    for label, vals in rows:
        line = f"{label:<34}" + "".join(f"{v:>9.3f}" for v in vals)
        if len(vals) == 2:
            line += f"{ratio(vals[1], vals[0]):>8}"
        print(line)

    print(
        f"\n== end to end: POST /v1/images/generations 64x64 low jpeg, {args.http_requests} per key, "
        "interleaved, one client (ms) =="
    )
    print(
        f"{'setup':<6}{'free-huge p50':>14}{'internal p50':>14}{'difference':>12}{'paired p50':>12}"
        f"{'free-huge p90':>15}{'internal p90':>14}"
    )
    for n in names:
        h = http[n]
        print(
            f"{n:<6}{h['limited']:>14.2f}{h['internal']:>14.2f}{h['limited'] - h['internal']:>+12.2f}"
            f"{h['paired']:>+12.2f}{h['limited_p90']:>15.2f}{h['internal_p90']:>14.2f}"
        )
    print(
        "both rows: the whole request (auth, validation, moderation, rate limit, reserve, placeholder "
        "render,\njpeg encode, blob store, settle, usage record, JSON) plus the httpx client, in one "
        "process (server in a\nthread: client and server share the GIL and this machine's cores). "
        "An internal key skips the\nlimiter (flow/rate_limit.py: no limits, no round trip), so "
        "'difference' (p50 - p50) and 'paired'\n(median of per-pair differences) are the whole cost "
        "of checking a key's limits."
    )
    if len(setups) < 2:
        print("(PostgreSQL or Redis unreachable: setup b skipped)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=2000, help="admission requests at 1 coroutine (twice as many at 16)"
    )
    parser.add_argument("--http-requests", type=int, default=300, help="HTTP requests per key per setup")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    # The placeholder-engine warning at start-up would land between the tables.
    logging.getLogger("imagegate").setLevel(logging.ERROR)

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imagegate-bench-")))
        setups = [
            Setup("a", "SQLite file (WAL) + LocalRateLimiter", f"sqlite:///{tmp / 'a.db'}", None, None, "")
        ]
        pg = postgres_settings(args.postgres_url)
        if pg is not None and redis_available(args.redis_url):
            tag = uuid.uuid4().hex[:10]
            setups.append(
                Setup(
                    "b",
                    f"{pg} + RedisRateLimiter",
                    stack.enter_context(pg_schema(args.postgres_url, f"bench_adm_{tag}")),
                    stack.enter_context(pg_schema(args.postgres_url, f"bench_srv_{tag}")),
                    args.redis_url,
                    stack.enter_context(redis_prefix(args.redis_url, "bench-admission")),
                )
            )
        adm: dict[str, Figures] = {}
        http: dict[str, dict[str, float]] = {}
        for s in setups:
            adm[s.name] = measure_admission(s, args.requests, tmp / f"{s.name}-bench")
            http[s.name] = measure_http(s, args.http_requests, tmp / f"{s.name}-server")
        report(setups, adm, http, args)


if __name__ == "__main__":
    main()
