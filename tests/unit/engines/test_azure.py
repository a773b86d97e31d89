"""engines/azure.py: the deployment and v1 routes, the body Azure takes, its key check, and its
errors as OpenAI's (the content filter as `moderation_blocked`)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from imagegate.domain import ImageJob, JobKind
from imagegate.engines import azure
from imagegate.engines.providers import PROVIDERS
from imagegate.engines.upstream import UpstreamConfig

BASE = "https://contoso.openai.azure.com/"


def config(**options: str) -> UpstreamConfig:
    return UpstreamConfig(
        name="az",
        base_url=BASE,
        api_key="k",
        model_map={"img": "gpt-image-1"},
        provider="azure",
        options=options,
    )


def job(kind: JobKind = "generation", **wire: Any) -> ImageJob:
    return ImageJob(
        model="img", prompt="a fox", kind=kind, passthrough=MappingProxyType({"prompt": "a fox", **wire})
    )


def test_the_deployment_route_names_the_deployment_and_the_api_version() -> None:
    assert azure.url(config(), job()) == (
        "https://contoso.openai.azure.com/openai/deployments/gpt-image-1/images/generations"
        "?api-version=2025-04-01-preview"
    )
    assert azure.url(config(deployment="my images/1", api_version="2024-10-21"), job("edit")) == (
        "https://contoso.openai.azure.com/openai/deployments/my%20images%2F1/images/edits?api-version=2024-10-21"
    )


def test_the_v1_route_takes_the_deployment_as_the_model() -> None:
    v1 = config(deployment="dep", api_version="v1")
    assert azure.url(v1, job()) == "https://contoso.openai.azure.com/openai/v1/images/generations"
    assert azure.body(v1, job(size="1024x1024")) == {"prompt": "a fox", "size": "1024x1024", "model": "dep"}
    assert azure.key_check_url(v1) == "https://contoso.openai.azure.com/openai/v1/models"


def test_the_body_is_the_clients_with_the_upstream_model_and_no_image_references() -> None:
    wire = {"images": [{"image_url": "https://x/a.png"}], "mask": {"image_url": "https://x/m.png"}, "n": 2}
    assert azure.body(config(deployment="dep"), job("edit", **wire)) == {
        "prompt": "a fox",
        "n": 2,
        "model": "gpt-image-1",
    }
    assert (
        azure.key_check_url(config())
        == "https://contoso.openai.azure.com/openai/models?api-version=2025-04-01-preview"
    )


@pytest.mark.parametrize(
    "error",
    [
        {"code": "contentFilter", "message": "Your task failed as a result of our safety system."},
        {
            "code": "content_filter",
            "message": "filtered",
            "innererror": {"code": "ResponsibleAIPolicyViolation"},
        },
        {"code": "400", "message": "filtered", "inner_error": {"code": "ResponsibleAIPolicyViolation"}},
    ],
)
def test_the_content_filter_is_moderation_blocked(error: dict[str, Any]) -> None:
    mapped = azure.client_error({"created": 1, "error": error})
    assert mapped is not None and mapped["error"]["code"] == "moderation_blocked"
    assert (
        mapped["error"]["type"] == "image_generation_user_error"
        and mapped["error"]["message"] == error["message"]
    )


def test_other_errors_keep_their_message_param_and_code() -> None:
    mapped = azure.client_error(
        {"error": {"code": "invalid_value", "message": "Invalid size", "param": "size"}}
    )
    assert mapped == {
        "error": {
            "message": "Invalid size",
            "type": "invalid_request_error",
            "param": "size",
            "code": "invalid_value",
        }
    }
    assert azure.client_error({"message": "no error object"}) is None and azure.client_error(None) is None


def test_azure_models_are_openais_without_webp_and_need_an_endpoint() -> None:
    provider = PROVIDERS["azure"]
    assert provider.base_url == "" and provider.options == ("deployment", "api_version")
    caps = provider.capabilities("gpt-image-1-mini")
    assert caps.formats == ("png", "jpeg") and caps.sizes == ("1024x1024", "1536x1024", "1024x1536")
    assert provider.price("gpt-image-1") == PROVIDERS["openai"].price("gpt-image-1")
