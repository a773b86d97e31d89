"""The README's SDK examples do what they say, run against the real server."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from imagegate.client import Client

README = Path(__file__).resolve().parents[2] / "README.md"


def snippet(starting: str) -> str:
    """The README's code from the line starting with `starting` to the end of its indented body."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(starting))
    end = start + 1
    while end < len(lines) and lines[end].startswith((" ", "\t")):
        end += 1
    return textwrap.dedent("\n".join(lines[start:end]))


def test_the_stream_example_names_every_file(
    live: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(snippet("for event in client.stream("), {"client": live})  # noqa: S102
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city-0.png", "city-1.png", "city.png"]
