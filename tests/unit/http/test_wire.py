"""The documented request bodies (http/wire.py, served in /openapi.json) and the parser
(flow/validate.py) accept exactly the same fields, for every kind of request."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from imagegate.flow import validate
from imagegate.http import wire


def documented(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize(
    ("model", "accepted"),
    [
        (wire.CreateImageRequest, validate.GENERATION_FIELDS),
        (wire.EditImageJsonRequest, validate.JSON_EDIT_FIELDS),
        (wire.EditImageMultipartRequest, validate.MULTIPART_EDIT_FIELDS),
    ],
)
def test_documented_fields_are_the_accepted_fields(model: type[BaseModel], accepted: frozenset[str]) -> None:
    assert documented(model) == set(accepted), (
        f"documented only: {documented(model) - accepted}; accepted only: {accepted - documented(model)}"
    )
