"""`imagegate serve`: migrate the database, print a first key on a new one, and serve, in one
process or several workers (http/workers.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imagegate.cli.common import output_console
from imagegate.cli.server import _settings
from imagegate.cli.stores import open_stores

if TYPE_CHECKING:
    from imagegate.config import Settings


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [IMAGEGATE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [IMAGEGATE_PORT].")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes [IMAGEGATE_WORKERS]; default one per CPU core, at most 8.", min=1
        ),
    ] = None,
) -> None:
    """Start the server (migrates the database; on a new one, creates and prints a key)."""
    import uvicorn

    from imagegate.http.app import create_app
    from imagegate.http.connections import uvicorn_options
    from imagegate.http.logs import configure as configure_logs
    from imagegate.process import keep_large_buffers
    from imagegate.provenance import load_credentials
    from imagegate.storage.signing import load_or_create_secret

    settings = _settings(host=host, port=port, workers=workers)
    configure_logs(settings.log_format)
    if settings.keep_large_buffers:
        keep_large_buffers()  # this process (one worker); each of N workers does it in worker_app
    stores = open_stores(settings, create=True)
    accounts = stores.accounts
    logging.getLogger("imagegate").info(
        "database: %s (the other imagegate commands find it from the same IMAGEGATE_DATA_DIR or "
        "IMAGEGATE_DATABASE_URL)",
        stores.location,
    )
    logging.getLogger("imagegate").info(
        "console: %s (sign in with the admin key or an API key)", console_url(settings.host, settings.port)
    )
    if stores.was_new and settings.create_initial_key and accounts.keys.count() == 0:
        # The operator's own first key: no rate limits, and the trial credit to spend.
        _, secret = accounts.create_key("default", tier="internal")
        _print_welcome(secret, settings.host, settings.port)
    stores.close()
    if not settings.access_log:
        logging.getLogger("imagegate").info(
            "access log off (IMAGEGATE_ACCESS_LOG=true turns it on); every images request is in the "
            "usage records: imagegate usage"
        )
    if settings.provenance:  # made here, before N workers race to make it, and said where
        credentials = load_credentials(settings.data_dir, settings.provenance_cert, settings.provenance_key)
        logging.getLogger("imagegate").info(
            "provenance: every image carries a signed C2PA manifest; readers' trust anchor: %s "
            "(imagegate provenance verify FILE --trust it)",
            credentials.ca_path or "the operator's own CA (IMAGEGATE_PROVENANCE_CERT's issuer)",
        )
    else:
        logging.getLogger("imagegate").info("provenance off: images are stored without a C2PA manifest")
    if settings.workers == 1:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=settings.access_log,
            **_uvicorn_logs(settings),
            **uvicorn_options(settings),
        )
        return
    if not settings.url_secret:
        load_or_create_secret(settings.data_dir / "url-secret")  # before the workers race to make it
    _prepare_workers(settings)
    uvicorn.run(
        "imagegate.http.workers:worker_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=settings.access_log,
        **_uvicorn_logs(settings),
        **uvicorn_options(settings, workers=True),
    )


def _uvicorn_logs(settings: Settings) -> dict[str, Any]:
    """JSON logs: uvicorn's records go to the root handler (http/logs.py) instead of its own."""
    return {"log_config": None} if settings.log_format == "json" else {}


def _prepare_workers(settings: Settings) -> None:
    """What N worker processes share, set up before uvicorn starts them: their settings (each
    builds its app from the environment), a fresh shared-state file for their rate limits and
    breakers when there is no Redis (the single process starts with empty ones too), and a fresh
    directory for prometheus-client's multiprocess mode unless one is set."""
    import os
    import shutil

    logging.getLogger("imagegate").info(
        "%d worker processes; limits and breakers shared through %s",
        settings.workers,
        "Redis" if settings.redis_url else settings.shared_state_path,
    )
    os.environ.update(
        IMAGEGATE_WORKERS=str(settings.workers),
        IMAGEGATE_HOST=settings.host,
        IMAGEGATE_PORT=str(settings.port),
    )
    shared = settings.shared_state_path
    if shared is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{shared}{suffix}").unlink(missing_ok=True)
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        metrics = settings.data_dir / "prometheus"
        shutil.rmtree(metrics, ignore_errors=True)
        metrics.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)


def console_url(host: str, port: int) -> str:
    """Where a person opens the web console: a wildcard bind address is reached on loopback."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/console/"


def _print_welcome(secret: str, host: str, port: int) -> None:
    base = f"http://{host}:{port}/v1"
    output_console().print(
        f"""
[bold green]imagegate: a new database, so here is its first API key (shown once):[/]

  [bold]{secret}[/]

Open the console and sign in with it, to make and edit images in the browser:

  {console_url(host, port)}

Try it:

  curl {base}/images/generations \\
    -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\
    -d '{{"model": "gpt-image-1", "prompt": "a red fox in a blue forest", "size": "1024x1024"}}'

  from openai import OpenAI
  import base64
  client = OpenAI(base_url="{base}", api_key="{secret}")
  result = client.images.generate(model="gpt-image-1", prompt="a red fox in a blue forest")
  open("fox.png", "wb").write(base64.b64decode(result.data[0].b64_json))
""",
        highlight=False,
        soft_wrap=True,
    )
