"""What the client commands share: options, the client they build, output, and exit codes.

Exit codes: 0 success; 1 a batch finished with failed jobs; 2 a usage error (bad option,
no API key, unreadable input); 3 the API answered with an error; 4 no answer (connection
error or timeout). Errors are one line on stderr, or a JSON object on stdout with --json.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from imagegate.client import (
    APIConnectionError,
    APIError,
    APIStatusError,
    Client,
    ImageCache,
    ImagegateError,
    ImageResult,
    Monitor,
    resolve_connection,
)
from imagegate.client._inputs import URL_PREFIXES
from imagegate.client._types import FORMATS
from imagegate.client.monitor import LOG_NAME, default_home

EXIT_OK, EXIT_FAILED_JOBS, EXIT_USAGE, EXIT_API, EXIT_CONNECTION = 0, 1, 2, 3, 4

ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", show_default=False, help="API key [IMAGEGATE_API_KEY, OPENAI_API_KEY]."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url", help="Base URL ending in /v1 [IMAGEGATE_BASE_URL, OPENAI_BASE_URL].", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
CacheOpt = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache", help="Reuse identical earlier results (cache in $IMAGEGATE_HOME/cache)."
    ),
]
RetriesOpt = Annotated[int, typer.Option("--max-retries", min=0, help="Retries after the first attempt.")]
SizeOpt = Annotated[str | None, typer.Option("--size", help="auto, 1024x1024, 1536x1024, 1024x1536 or WxH.")]
QualityOpt = Annotated[str | None, typer.Option("--quality", help="low, medium, high or auto.")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", help="png, jpeg or webp (default: from -o's extension).")
]
BackgroundOpt = Annotated[str | None, typer.Option("--background", help="transparent, opaque or auto.")]
NOpt = Annotated[int | None, typer.Option("--n", "-n", min=1, max=10, help="Number of images.")]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", min=0, help="imagegate: same prompt + seed, same image.")
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model name (default gpt-image-1).")]


def image_source(value: str | None) -> str | None:
    """An input image as the SDK takes it: an existing file, or an http(s) or data: URL."""
    if value is None or value.startswith(URL_PREFIXES):
        return value
    path = Path(value)
    if not path.exists():
        raise typer.BadParameter(f"File '{value}' does not exist (nor is it an http(s) or data: URL).")
    if path.is_dir():
        raise typer.BadParameter(f"File '{value}' is a directory.")
    return value


def image_sources(values: list[str]) -> list[str]:
    """`image_source` for each of a list."""
    return [source for value in values if (source := image_source(value)) is not None]


ImageHelp = "png, jpeg or webp: a file, or an http(s) or data: URL"
OutOpt = Annotated[
    Path, typer.Option("--output", "-o", help="Where to write the image (n > 1: out-1.png, out-2.png ...).")
]


# Off a terminal nothing limits a line: rich's default of 80 columns cut table cells ("sk-ig-ab…")
# and wrapped long lines, so a piped `keys list` lost the very prefix it is read for.
UNBOUNDED_WIDTH = 100_000


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = UNBOUNDED_WIDTH
    return console


def output_console() -> Console:
    """Where tables and messages go (stdout): the terminal's width, unbounded when piped."""
    return _console(stderr=False)


def error_console() -> Console:
    """Where progress bars and error lines go (stderr), sized as `output_console`."""
    return _console(stderr=True)


def echo_error(message: str, code: int, json_out: bool, details: Mapping[str, Any] | None = None) -> NoReturn:
    """Report an error (one stderr line, or JSON on stdout) and exit with `code`."""
    if json_out:
        typer.echo(json.dumps({"error": {"message": message, **(details or {})}, "exit_code": code}))
    else:
        typer.echo(f"imagegate: error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def reporting(json_out: bool) -> Iterator[None]:
    """Turn SDK and input errors into one-line reports and exit codes."""
    try:
        yield
    except APIStatusError as exc:
        echo_error(
            str(exc),
            EXIT_API,
            json_out,
            {"status": exc.status_code, "code": exc.code, "param": exc.param, "type": exc.type},
        )
    except APIConnectionError as exc:
        echo_error(exc.message, EXIT_CONNECTION, json_out)
    except APIError as exc:
        echo_error(str(exc), EXIT_API, json_out)
    except ImagegateError as exc:
        echo_error(str(exc), EXIT_USAGE, json_out)
    except (OSError, ValueError, TypeError) as exc:
        echo_error(f"{exc}", EXIT_USAGE, json_out)


def home() -> Path:
    """$IMAGEGATE_HOME, else ~/.imagegate."""
    return default_home()


def make_client(
    api_key: str | None,
    base_url: str | None,
    *,
    cache: bool = False,
    max_retries: int = 2,
    json_out: bool = False,
) -> Client:
    """A client that logs every call to $IMAGEGATE_HOME/monitor.jsonl (for `imagegate stats`)."""
    try:
        resolve_connection(api_key, base_url)
    except ImagegateError as exc:
        echo_error(str(exc), EXIT_USAGE, json_out)
    directory = home()
    return Client(
        api_key,
        base_url,
        max_retries=max_retries,
        monitor=Monitor(directory / LOG_NAME),
        cache=ImageCache(directory / "cache") if cache else None,
    )


def format_from_path(path: Path, explicit: str | None) -> str | None:
    """--format if given, else the output file's extension (png/jpeg/webp), else None."""
    if explicit:
        return "jpeg" if explicit == "jpg" else explicit
    return FORMATS.get(path.suffix.lower())


def result_json(result: ImageResult, files: list[Path]) -> dict[str, Any]:
    """The --json summary of one call."""
    usage = result.usage
    return {
        "files": [str(f) for f in files],
        "urls": [image.url for image in result],
        "size": result.size,
        "quality": result.quality,
        "background": result.background,
        "output_format": result.output_format,
        "seed": result.seed,
        "model": result.model,
        "usage": None
        if usage is None
        else {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
        "cost_usd": result.cost_usd,
        "cost_estimated": result.cost_estimated,
        "cached": result.cached,
        "request_id": result.request_id,
    }


def report_result(result: ImageResult, files: list[Path], json_out: bool) -> None:
    """Print what a call wrote (human or JSON)."""
    if json_out:
        typer.echo(json.dumps(result_json(result, files)))
        return
    note = " (cached)" if result.cached else ""
    for path in files:
        typer.echo(f"wrote {path}  {result.size or ''} {result.quality or ''}".rstrip())
    typer.echo(f"cost ${result.cost_usd:.4f}{note}")
