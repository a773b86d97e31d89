"""Validate imagegate's responses against OpenAI's own OpenAPI schemas (shared/spec)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "openai-images.openapi.yaml"
# A copy travels with the repository, so a clone without shared/ still validates.
LOCAL = Path(__file__).resolve().parent / "data" / "openai-images.openapi.yaml"


@functools.cache
def _doc() -> dict[str, Any]:
    path = LOCAL if LOCAL.exists() else SPEC
    return yaml.safe_load(path.read_text())


def validate(schema_name: str, instance: Any) -> None:
    """Raise jsonschema.ValidationError unless `instance` matches components/schemas/NAME."""
    root = dict(_doc())
    root["$ref"] = f"#/components/schemas/{schema_name}"
    Draft202012Validator(root).validate(instance)
