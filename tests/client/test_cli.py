"""The client commands as a user runs them: `python -m imagegate.cli` against the live server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage

from imagegate.client import Client
from tests.conftest import LiveServer
from tests.imaging import mask_png, png

CLI = [sys.executable, "-m", "imagegate.cli"]


@pytest.fixture
def env(server: LiveServer, api_key: str, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEGATE_", "OPENAI_"))}
    return {
        **base,
        "IMAGEGATE_API_KEY": api_key,
        "IMAGEGATE_BASE_URL": server.api_base,
        "IMAGEGATE_HOME": str(tmp_path / "home"),
        "COLUMNS": "200",
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=90)


def size_of(path: Path) -> tuple[int, int]:
    with PILImage.open(path) as image:
        return image.size


def test_generate_writes_numbered_files(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    done = run(
        [
            "generate",
            "a red fox",
            "-o",
            str(out),
            "--n",
            "2",
            "--size",
            "1200x630",
            "--quality",
            "low",
            "--seed",
            "3",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    assert [size_of(tmp_path / f"out-{i}.png") for i in (1, 2)] == [(1200, 630)] * 2
    assert not out.exists() and "cost $" in done.stdout


def test_generate_json_and_format_from_extension(env: dict[str, str], tmp_path: Path) -> None:
    done = run(["generate", "a fox", "-o", str(tmp_path / "fox.jpg"), "--quality", "low", "--json"], env)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["output_format"] == "jpeg" and body["files"] == [str(tmp_path / "fox.jpg")]
    assert body["cost_usd"] > 0 and body["usage"]["output_tokens"] == 272
    with PILImage.open(tmp_path / "fox.jpg") as image:
        assert image.format == "JPEG"


def test_exit_codes_and_one_line_errors(env: dict[str, str], tmp_path: Path) -> None:
    bad = run(["generate", "x", "-o", str(tmp_path / "x.png"), "--size", "13x13"], env)
    assert bad.returncode == 3 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith("imagegate: error: 400 invalid_value") and "size" in bad.stderr
    as_json = run(["generate", "x", "-o", str(tmp_path / "x.png"), "--size", "13x13", "--json"], env)
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["error"]["param"] == "size"
    no_key = {k: v for k, v in env.items() if k != "IMAGEGATE_API_KEY"}
    missing = run(["generate", "x", "-o", str(tmp_path / "x.png")], no_key)
    assert missing.returncode == 2 and "No API key" in missing.stderr
    offline = run(
        [
            "generate",
            "x",
            "-o",
            str(tmp_path / "x.png"),
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--max-retries",
            "0",
        ],
        env,
    )
    assert offline.returncode == 4 and "Connection error" in offline.stderr
    usage = run(["generate", "x"], env)  # -o is required
    assert usage.returncode == 2


def test_edit_with_mask(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(png(320, 200))
    (tmp_path / "mask.png").write_bytes(mask_png(320, 200, (0, 0, 100, 100)))
    done = run(
        [
            "edit",
            str(tmp_path / "in.png"),
            "--mask",
            str(tmp_path / "mask.png"),
            "--prompt",
            "add a sun",
            "-o",
            str(tmp_path / "edited.webp"),
            "--quality",
            "low",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    with PILImage.open(tmp_path / "edited.webp") as image:
        assert image.format == "WEBP" and image.size == (1536, 1024)  # auto: nearest 320:200
    missing = run(["edit", str(tmp_path / "nope.png"), "--prompt", "x", "-o", str(tmp_path / "y.png")], env)
    assert missing.returncode == 2


def test_edit_and_recipes_take_image_urls(
    env: dict[str, str], server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    """The SDK takes http(s) and data: URLs for images and masks; so do the commands built on it."""
    with Client(api_key, server.api_base) as client:
        url = client.generate("a floor plan", size="1024x1024", quality="low").image.url
    assert url and url.startswith("http://127.0.0.1")
    image = "data:image/png;base64," + base64.b64encode(png(96, 64)).decode()
    mask = "data:image/png;base64," + base64.b64encode(mask_png(96, 64, (0, 0, 30, 30))).decode()
    by_data = run(
        ["edit", image, "--mask", mask, "-p", "add a sun", "-o", str(tmp_path / "d.png"), "--quality", "low"],
        env,
    )
    assert by_data.returncode == 0, by_data.stderr
    assert size_of(tmp_path / "d.png") == (1536, 1024)  # auto: the model size nearest 96:64
    by_url = run(["edit", url, "-p", "in 3D", "-o", str(tmp_path / "u.png"), "--quality", "low"], env)
    assert by_url.returncode == 0, by_url.stderr
    assert size_of(tmp_path / "u.png") == (1024, 1024)
    recipe = run(
        [
            "recipe",
            "floor-plan",
            url,
            "--style",
            "modern",
            "--lighting",
            "warm",
            "--quality",
            "low",
            "--out",
            str(tmp_path / "plan"),
        ],
        env,
    )
    assert recipe.returncode == 0, recipe.stderr
    assert [size_of(p) for p in (tmp_path / "plan").glob("*.png")] == [(1536, 1024)]
    not_a_file = run(
        [
            "recipe",
            "clothing-try-on",
            str(tmp_path / "nope.png"),
            "--model-description",
            "x",
            "--out",
            str(tmp_path),
        ],
        env,
    )
    assert not_a_file.returncode == 2 and "does not exist" in not_a_file.stderr


def test_batch_resumes_and_reports_failures(env: dict[str, str], tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"id": f"j{i}", "prompt": f"banner {i}", "size": "1200x675", "quality": "low"} for i in range(4)]
    jobs.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = tmp_path / "out"
    first = run(["batch", str(jobs), "--out", str(out), "--max-jobs", "2", "--json"], env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["done"] == 2 and summary["pending"] == 2 and summary["failures"] == []
    assert len(list(out.glob("*.png"))) == 2
    second = run(["batch", str(jobs), "--out", str(out), "--concurrency", "2"], env)
    assert second.returncode == 0, second.stderr
    assert "done 4/4 (resumed 2)" in second.stdout
    assert sorted(p.name for p in out.glob("*.png")) == ["j0.png", "j1.png", "j2.png", "j3.png"]
    assert size_of(out / "j3.png") == (1200, 675)
    table = tmp_path / "jobs.csv"
    table.write_text("id,prompt,size,quality\nok,fine,1024x1024,low\nbad,broken,13x13,low\n")
    mixed = run(["batch", str(table), "--out", str(tmp_path / "csv")], env)
    assert mixed.returncode == 1 and "job bad failed" in mixed.stderr
    assert (tmp_path / "csv" / "ok.png").exists()


def test_stats_read_the_local_monitor_log(env: dict[str, str], tmp_path: Path) -> None:
    run(["generate", "one", "-o", str(tmp_path / "a.png"), "--quality", "low"], env)
    run(["generate", "two", "-o", str(tmp_path / "b.png"), "--size", "9x9"], env)
    stats = run(["stats", "--json", "--export", str(tmp_path / "calls.csv")], env)
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["total_requests"] == 2 and figures["succeeded"] == 1 and figures["total_cost_usd"] > 0
    assert (tmp_path / "calls.csv").read_text().count("\n") == 3
    human = run(["stats"], env)
    assert "success_rate" in human.stdout and "p95_latency_s" in human.stdout


def test_cost(env: dict[str, str]) -> None:
    offline = run(
        ["cost", "--quality", "high", "--size", "1024x1536", "--n", "4", "--offline", "--json"], env
    )
    assert json.loads(offline.stdout)["cost_usd"] == pytest.approx(0.9984)
    served = run(["cost", "--quality", "low"], env)
    assert served.returncode == 0 and served.stdout.startswith("$0.0109") and "server prices" in served.stdout


def test_recipe_social_media(env: dict[str, str], tmp_path: Path) -> None:
    done = run(
        [
            "recipe",
            "social-media",
            "--theme",
            "summer sale",
            "--platforms",
            "instagram_post,twitter_post",
            "--quality",
            "low",
            "--out",
            str(tmp_path),
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    assert size_of(tmp_path / "instagram_post.png") == (1080, 1080)
    assert size_of(tmp_path / "twitter_post.png") == (1200, 675)
    unknown = run(
        ["recipe", "social-media", "--theme", "x", "--platforms", "myspace", "--out", str(tmp_path)], env
    )
    assert unknown.returncode == 2 and "unknown platform" in unknown.stderr
