"""engines/vertex.py, the pure translation: sizes to aspect ratio and sampleImageSize, the :predict
body, the answer's images and filtered ones, the URL and credentials for a project (OAuth) or for
express mode (API key), and the per-image prices."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from imagegate.domain import ImageJob
from imagegate.engines.adapt import closest
from imagegate.engines.upstream import UpstreamConfig
from imagegate.engines.vertex import VERTEX, VertexEngine, predict_body, predictions
from imagegate.images.tokens import Usage
from imagegate.pricing import base_cost


def job(width: int = 1408, height: int = 768, **fields: Any) -> ImageJob:
    return ImageJob(model="imagen", prompt="a red barn at dawn", width=width, height=height, **fields)


@pytest.mark.parametrize(
    ("model", "size", "ratio", "tier"),
    [
        ("imagen-4.0-generate-001", (1024, 1024), "1:1", "1K"),
        ("imagen-4.0-generate-001", (2816, 1536), "16:9", "2K"),
        ("imagen-4.0-ultra-generate-001", (1792, 2560), "3:4", "2K"),
        ("imagen-4.0-fast-generate-001", (768, 1408), "9:16", None),
        ("imagen-3.0-generate-002", (1280, 896), "4:3", None),
        ("imagen-9-unknown", (1280, 896), "4:3", None),
    ],
)
def test_a_native_size_is_its_aspect_ratio_and_size(
    model: str, size: tuple[int, int], ratio: str, tier: str | None
) -> None:
    parameters = predict_body(job(*size), model)["parameters"]
    assert parameters["aspectRatio"] == ratio
    assert parameters.get("sampleImageSize") == tier


@pytest.mark.parametrize(
    ("model", "size", "asked"),
    [
        ("imagen-4.0-generate-001", (1080, 1080), (2048, 2048)),  # 1K would not cover it
        ("imagen-4.0-generate-001", (1200, 630), (1408, 768)),
        ("imagen-4.0-fast-generate-001", (1080, 1920), (768, 1408)),  # the largest 9:16 it has
        ("imagen-4.0-ultra-generate-001", (1200, 627), (1408, 768)),
    ],
)
def test_the_guides_sizes_are_asked_at_a_size_the_model_renders(
    model: str, size: tuple[int, int], asked: tuple[int, int]
) -> None:
    assert closest(*size, VERTEX.capabilities(model)) == asked


def test_the_predict_body() -> None:
    assert predict_body(job(n=3), "imagen-4.0-generate-001") == {
        "instances": [{"prompt": "a red barn at dawn"}],
        "parameters": {
            "sampleCount": 3,
            "aspectRatio": "16:9",
            "sampleImageSize": "1K",
            "outputOptions": {"mimeType": "image/png"},
            "includeRaiReason": True,
        },
    }
    jpeg = predict_body(job(output_format="jpeg", output_compression=70, moderation="low"), "imagen-3.0")
    assert jpeg["parameters"]["outputOptions"] == {"mimeType": "image/jpeg", "compressionQuality": 70}
    assert jpeg["parameters"]["safetySetting"] == "block_only_high"
    assert "sampleImageSize" not in jpeg["parameters"]


def test_the_answers_images_and_filtered_ones() -> None:
    body = {
        "predictions": [
            {"bytesBase64Encoded": base64.b64encode(b"one").decode(), "mimeType": "image/jpeg"},
            {"raiFilteredReason": "Your current safety filter threshold filtered out 1 generated image."},
            {"bytesBase64Encoded": base64.b64encode(b"two").decode()},
        ]
    }
    images, filtered = predictions(body)
    assert [(data, mime) for data, _, mime in images] == [(b"one", "image/jpeg"), (b"two", "image/png")]
    assert filtered == ["Your current safety filter threshold filtered out 1 generated image."]
    assert predictions({}) == ([], [])


@pytest.mark.parametrize("body", [{"predictions": [{"bytesBase64Encoded": "***"}]}, {"predictions": [3]}, []])
def test_a_malformed_answer_raises(body: Any) -> None:
    with pytest.raises((ValueError, KeyError, TypeError, AttributeError)):
        predictions(body)


def engine(base_url: str = "https://aiplatform.googleapis.com/v1", **options: str) -> VertexEngine:
    config = UpstreamConfig(
        name="v",
        base_url=base_url,
        api_key="the-key",
        model_map={"imagen": "imagen-4.0-ultra-generate-001"},
        provider="vertex",
        options=options,
    )
    return VertexEngine(config, None, None)  # type: ignore[arg-type]  # no call is made


@pytest.mark.parametrize(
    ("base_url", "options", "url", "headers", "check"),
    [
        (
            "https://aiplatform.googleapis.com/v1",
            {"project": "p1", "location": "europe-west4"},
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4"
            "/publishers/google/models/imagen-4.0-ultra-generate-001:predict",
            {"Authorization": "Bearer the-key"},
            "https://europe-west4-aiplatform.googleapis.com/v1beta1/publishers/google/models/"
            "imagen-4.0-ultra-generate-001",
        ),
        (
            "https://aiplatform.googleapis.com/v1",
            {"project": "p1"},  # the default location
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1"
            "/publishers/google/models/imagen-4.0-ultra-generate-001:predict",
            {"Authorization": "Bearer the-key"},
            "https://us-central1-aiplatform.googleapis.com/v1beta1/publishers/google/models/"
            "imagen-4.0-ultra-generate-001",
        ),
        (
            "https://aiplatform.googleapis.com/v1",
            {"project": "p1", "location": "global"},
            "https://aiplatform.googleapis.com/v1/projects/p1/locations/global"
            "/publishers/google/models/imagen-4.0-ultra-generate-001:predict",
            {"Authorization": "Bearer the-key"},
            "https://aiplatform.googleapis.com/v1beta1/publishers/google/models/imagen-4.0-ultra-generate-001",
        ),
        (
            "http://127.0.0.1:9/v1",  # the operator's own base URL: used as given
            {"project": "p1", "location": "asia-northeast1"},
            "http://127.0.0.1:9/v1/projects/p1/locations/asia-northeast1"
            "/publishers/google/models/imagen-4.0-ultra-generate-001:predict",
            {"Authorization": "Bearer the-key"},
            "http://127.0.0.1:9/v1beta1/publishers/google/models/imagen-4.0-ultra-generate-001",
        ),
        (
            "https://aiplatform.googleapis.com/v1",
            {},  # express mode
            "https://aiplatform.googleapis.com/v1/publishers/google/models/imagen-4.0-ultra-generate-001:predict",
            {"x-goog-api-key": "the-key"},
            "https://aiplatform.googleapis.com/v1beta1/publishers/google/models/imagen-4.0-ultra-generate-001",
        ),
    ],
)
def test_the_url_and_credentials(
    base_url: str, options: dict[str, str], url: str, headers: dict[str, str], check: str
) -> None:
    made = engine(base_url, **options)
    assert made._url(job()) == url
    assert made._headers() == headers
    assert made.key_check() == (check, headers)


@pytest.mark.parametrize(
    ("model", "micros"),
    [
        ("imagen-4.0-generate-001", 40_000),
        ("imagen-4.0-ultra-generate-001", 60_000),
        ("imagen-4.0-fast-generate-001", 20_000),
        ("imagen-3.0-generate-002", 40_000),
        ("imagen-3.0-fast-generate-001", 20_000),
    ],
)
def test_imagen_is_priced_per_image_at_any_size(model: str, micros: int) -> None:
    price = VERTEX.price(model)
    assert price is not None
    for size in ("1024x1024", "2816x1536"):
        # Whatever the token count: Imagen reports none, and the price is the image's.
        assert (
            base_cost(price, Usage(text_in=100, image_out=5000), images=3, quality="high", size=size)
            == 3 * micros
        )


def test_the_capabilities() -> None:
    caps = VERTEX.capabilities("imagen-4.0-generate-001")
    assert caps.max_n == 4 and caps.formats == ("png", "jpeg") and not caps.edits and not caps.alpha
    assert caps.sizes is not None and len(caps.sizes) == 10 and "2816x1536" in caps.sizes
    fast = VERTEX.capabilities("imagen-4.0-fast-generate-001").sizes
    assert fast == ("1024x1024", "896x1280", "1280x896", "768x1408", "1408x768")
    assert VERTEX.options == ("project", "location") and not VERTEX.required
