"""Streaming partial images over SSE, read by the SDK's own stream iterator."""

from __future__ import annotations

import base64
import json

import httpx
import openai

from imagegate.images.tokens import output_image_tokens
from tests.imaging import open_image, png
from tests.schemas import validate

SCHEMAS = {
    "image_generation.partial_image": "ImageGenPartialImageEvent",
    "image_generation.completed": "ImageGenCompletedEvent",
    "image_edit.partial_image": "ImageEditPartialImageEvent",
    "image_edit.completed": "ImageEditCompletedEvent",
}


def test_generation_stream(client: openai.OpenAI) -> None:
    stream = client.images.generate(
        model="gpt-image-1",
        prompt="a city at night",
        stream=True,
        partial_images=3,
        size="1024x1024",
        quality="low",
    )
    events = list(stream)
    assert [e.type for e in events] == ["image_generation.partial_image"] * 3 + ["image_generation.completed"]
    assert [e.partial_image_index for e in events[:3]] == [0, 1, 2]  # type: ignore[union-attr]
    done = events[-1]
    assert done.type == "image_generation.completed"
    assert done.usage.output_tokens == output_image_tokens("low", 1024, 1024) + 300
    assert open_image(base64.b64decode(done.b64_json)).size == (1024, 1024)
    for e in events:
        validate(SCHEMAS[e.type], e.model_dump(exclude_none=True, exclude={"seed", "url"}))


def test_stream_without_partials_sends_only_completed(client: openai.OpenAI) -> None:
    stream = client.images.generate(model="gpt-image-1", prompt="x", stream=True, quality="low")
    assert [e.type for e in stream] == ["image_generation.completed"]


def test_stream_n_images_split_usage(client: openai.OpenAI) -> None:
    events = list(
        client.images.generate(
            model="gpt-image-1", prompt="two", stream=True, partial_images=1, n=2, quality="low"
        )
    )
    completed = [e for e in events if e.type == "image_generation.completed"]
    assert len(completed) == 2
    out = sum(e.usage.output_tokens for e in completed)  # type: ignore[union-attr]
    assert out == 2 * (output_image_tokens("low", 1024, 1024) + 100)


def test_edit_stream(client: openai.OpenAI) -> None:
    stream = client.images.edit(
        model="gpt-image-1",
        image=("a.png", png(512, 512), "image/png"),
        prompt="add snow",
        stream=True,
        partial_images=2,
        size="1024x1024",
    )
    events = list(stream)
    assert [e.type for e in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    for e in events:
        validate(SCHEMAS[e.type], e.model_dump(exclude_none=True, exclude={"seed", "url"}))


def test_sse_wire_framing(http: httpx.Client) -> None:
    with http.stream(
        "POST",
        "/v1/images/generations",
        json={"prompt": "frames", "stream": True, "partial_images": 1, "quality": "low"},
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = resp.read().decode()
    blocks = [b for b in text.split("\n\n") if b]
    assert len(blocks) == 2
    for block in blocks:
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        assert json.loads(data_line[6:])["type"] == event_line[7:]
