"""The SDK stays a client: it never imports the server side, a web framework, or the CLI.

The CLI (`imagegate.cli`, typer and rich) is built on the SDK, never the other way round: the
base install's SDK needs httpx and the standard library only (Pillow optional).
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import imagegate.cli
import imagegate.client

SERVER = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "uvicorn",
    "pydantic",
    "redis",
    "imagegate.http",
    "imagegate.flow",
    "imagegate.storage",
    "imagegate.engines",
    "imagegate.images",
    "imagegate.limits",
    "imagegate.config",
    "imagegate.pricing",
    "imagegate.errors",
)
CLI = ("typer", "rich", "click", "imagegate.cli")
FORBIDDEN = SERVER + CLI
PACKAGE = Path(imagegate.client.__file__).parent
CLI_PACKAGE = Path(imagegate.cli.__file__).parent
SDK_MODULES = sorted(f"imagegate.client.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE)]))


def forbidden(name: str, prefixes: tuple[str, ...] = FORBIDDEN) -> bool:
    """Whether module `name` is one of `prefixes` or inside one (imagegate.client is not imagegate.cli)."""
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def imported_names(module: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def test_no_forbidden_imports_in_the_source() -> None:
    for module in PACKAGE.glob("*.py"):
        for name in imported_names(module):
            assert not forbidden(name), f"{module.name} imports {name}"


def test_importing_every_sdk_module_loads_no_server_or_cli_module() -> None:
    assert "imagegate.client.recipes" in SDK_MODULES and "imagegate.client.batch" in SDK_MODULES
    # httpx imports click, rich and pygments by itself when they are installed (for its own CLI,
    # httpx._main): only what loading the SDK adds after httpx counts.
    code = (
        "import sys, importlib, httpx; before = set(sys.modules); "
        "from imagegate import Client, AsyncClient; "
        f"[importlib.import_module(m) for m in {SDK_MODULES!r}]; "
        "print('\\n'.join(set(sys.modules) - before))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    assert not [m for m in loaded if forbidden(m)]


def test_the_cli_is_a_separate_package_over_the_sdk() -> None:
    """Every typer/rich import lives in imagegate.cli; its client side uses only the SDK."""
    users = {
        m.name
        for m in CLI_PACKAGE.glob("*.py")
        if any(forbidden(n, ("typer", "rich")) for n in imported_names(m))
    }
    assert {"client.py", "batch.py", "recipes.py", "common.py", "server.py"} <= users
    for name in ("client.py", "batch.py", "recipes.py", "common.py"):
        server_side = [n for n in imported_names(CLI_PACKAGE / name) if forbidden(n, SERVER)]
        assert not server_side, f"cli/{name} imports {server_side}"


def test_modules_stay_small() -> None:
    sizes = {
        f"{m.parent.name}/{m.name}": len(m.read_text().splitlines())
        for package in (PACKAGE, CLI_PACKAGE)
        for m in package.glob("*.py")
    }
    assert max(sizes.values()) <= 400, sizes
