"""/v1/models, /openapi.json, /healthz."""

from __future__ import annotations

import httpx
import openai

from tests.conftest import LiveServer
from tests.schemas import validate


def test_models_list_and_retrieve(client: openai.OpenAI, http: httpx.Client) -> None:
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert "gpt-image-1" in ids and "gpt-image-1.5" in ids
    for m in models.data:
        assert m.model_extra is not None and m.model_extra["engine"] == "placeholder"
        assert "placeholder" in m.model_extra["engine_description"]
    one = client.models.retrieve("gpt-image-1")
    assert one.id == "gpt-image-1" and one.owned_by == "imagegate"
    body = http.get("/v1/models").json()
    validate("ListModelsResponse", body)


def test_openapi_describes_the_real_bodies(server: LiveServer) -> None:
    doc = httpx.get(server.base_url + "/openapi.json").json()
    edits = doc["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]
    assert set(edits) == {"multipart/form-data", "application/json"}
    schemas = doc["components"]["schemas"]
    multipart = schemas["EditImageMultipartRequest"]["properties"]
    assert multipart["image"]["items"]["format"] == "binary"
    gen = schemas["CreateImageRequest"]
    assert "prompt" in gen["required"] and "output_format" in gen["properties"]
    assert httpx.get(server.base_url + "/healthz").json() == {"status": "ok"}
