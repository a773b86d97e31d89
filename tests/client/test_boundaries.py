"""The SDK stays a client: it never imports the server side (or a web framework)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import imagegate.client

FORBIDDEN = ("fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "pydantic", "redis",
             "imagegate.http", "imagegate.flow", "imagegate.storage", "imagegate.engines", "imagegate.images",
             "imagegate.limits", "imagegate.config", "imagegate.pricing", "imagegate.errors")
PACKAGE = Path(imagegate.client.__file__).parent


def test_no_forbidden_imports_in_the_source() -> None:
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{module.name} imports {name}"


def test_importing_the_sdk_loads_no_server_module() -> None:
    code = ("import sys; from imagegate import Client, AsyncClient; import imagegate.client.recipes, "
            "imagegate.client.commands; print('\\n'.join(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    assert not [m for m in loaded if m.startswith(FORBIDDEN)]


def test_modules_stay_small() -> None:
    sizes = {m.name: len(m.read_text().splitlines()) for m in PACKAGE.glob("*.py")}
    assert max(sizes.values()) <= 400, sizes
