"""Real backing services and gateway processes, shared by the test fixtures and bench/ scripts:
a PostgreSQL schema, a Redis key prefix or an S3 bucket of one's own (removed afterwards), an S3
server (moto), and `imagegate serve` in a subprocess, as an operator runs it."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import create_engine, text

from imagegate.http.serve import free_port

CLI = [sys.executable, "-m", "imagegate.cli"]

# Looked up before any fork: the child only makes the call (tests/services.py die_with_parent).
_PRCTL = ctypes.CDLL(None).prctl if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` of every server a test or bench starts: SIGTERM to it when the process that
    started it dies, even by SIGKILL or a timeout, where no `finally` runs. Without it, benches and
    test runs stopped that way left their servers serving (one day: 66 processes, a third of a
    core, under the benchmarks that followed)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


# The money suites bill placeholder images at gpt-image-1's list price (the default is free).
LIST_PRICE = json.dumps(
    {"text_in_per_1m": 5_000_000, "image_in_per_1m": 10_000_000, "image_out_per_1m": 40_000_000}
)


def redis_available(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every Redis key under `prefix`."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
    finally:
        client.close()


@contextlib.contextmanager
def redis_prefix(url: str, label: str = "test") -> Iterator[str]:
    """A key prefix nobody else uses; every key under it is deleted on exit."""
    prefix = f"imagegate-{label}:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        delete_prefix(url, prefix)


@contextlib.contextmanager
def pg_schema(server_url: str, name: str | None = None) -> Iterator[str]:
    """A fresh schema (named `name`, or a random one), as a database URL that uses it; dropped on exit."""
    schema = name or "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in server_url else "?"
    try:
        yield f"{server_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@dataclass
class Process:
    base_url: str
    proc: subprocess.Popen[str]
    env: dict[str, str]

    @property
    def api_base(self) -> str:
        return self.base_url + "/v1"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> str:
        """Terminate and return what it printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.communicate(timeout=20)[0] or ""


@contextlib.contextmanager
def spawn_server(
    data_dir: Path, *, own_env: bool = False, quiet: bool = False, **env: str
) -> Iterator[Process]:
    """`imagegate serve` on a free port with IMAGEGATE_* settings from `env`; waits for /healthz.

    own_env: drop the IMAGEGATE_* variables of this process's environment (benchmarks).
    quiet: discard its output (a long benchmark would fill the pipe) instead of keeping it for stop().
    """
    port = free_port()
    base_env = {k: v for k, v in os.environ.items() if not (own_env and k.startswith("IMAGEGATE_"))}
    full_env = {
        **base_env,
        "IMAGEGATE_DATA_DIR": str(data_dir),
        "IMAGEGATE_PORT": str(port),
        "IMAGEGATE_CREATE_INITIAL_KEY": "false",
        "IMAGEGATE_WORKERS": "1",  # one process: a test about workers asks for more
        "IMAGEGATE_PROVENANCE": "true",  # as in production (tests/conftest.py make_settings, PASSTHROUGH)
        "IMAGEGATE_PLACEHOLDER_PRICE": LIST_PRICE,
        **env,
    }
    output = subprocess.DEVNULL if quiet else subprocess.PIPE
    proc = subprocess.Popen(
        CLI + ["serve"],
        env=full_env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,  # one foreign call, prepared before the fork
    )
    process = Process(f"http://127.0.0.1:{port}", proc, full_env)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(process.base_url + "/healthz").status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("imagegate serve did not start:\n" + process.stop())
            time.sleep(0.1)
        yield process
    finally:
        if proc.poll() is None:
            # SIGTERM: with --workers N the supervisor stops and waits for its workers, so none is
            # still writing into the data directory when the caller removes it.
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate(timeout=20)  # also closes the pipe


# What the S3 tests' boto3 clients and servers read: moto takes any keys; no metadata service.
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "imagegate-test",
    "AWS_SECRET_ACCESS_KEY": "imagegate-test-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextlib.contextmanager
def spawn_moto() -> Iterator[str]:
    """moto's S3-speaking server (`moto_server`) in a subprocess on a free loopback port: its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **AWS_TEST_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/moto-api/").status_code < 500:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def s3_client(endpoint_url: str) -> Any:
    """A plain boto3 client of the test server (making buckets, looking at what a store left)."""
    import boto3

    keys = {"aws_access_key_id": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"]}
    keys["aws_secret_access_key"] = AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"]
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name="us-east-1", **keys)


@contextlib.contextmanager
def s3_bucket(endpoint_url: str) -> Iterator[str]:
    """A new bucket on the test server; emptied and removed on exit."""
    name = "t-" + uuid.uuid4().hex[:16]
    client = s3_client(endpoint_url)
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        client.delete_bucket(Bucket=name)
