"""The documented request bodies (http/wire.py, served in /openapi.json) and the parser
(flow/validate.py) accept exactly the same fields, for every kind of request."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from imagegate.errors import InvalidValue
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


@pytest.mark.parametrize("field", ["user", "safety_identifier"])
def test_documented_lengths_are_the_parsers(field: str) -> None:
    """The OpenAPI document states the length the parser enforces (storage/bounds.py)."""
    from imagegate.storage import bounds

    for model in (wire.CreateImageRequest, wire.EditImageJsonRequest, wire.EditImageMultipartRequest):
        schema = model.model_json_schema()["properties"][field]
        lengths = [option.get("maxLength") for option in schema.get("anyOf", [schema])]
        assert bounds.USER in lengths, (model.__name__, schema)
    assert validate._str({field: "u" * bounds.USER}, field, bounds.USER) == "u" * bounds.USER
    with pytest.raises(InvalidValue):
        validate._str({field: "u" * (bounds.USER + 1)}, field, bounds.USER)
