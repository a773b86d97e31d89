"""engines/adapt.py: what a provider cannot render is asked at the closest size it can and
fitted, formats converted, n fanned out, streams served as completed events, and what cannot be
honoured refused. The engine run through the plan is the real placeholder renderer."""

from __future__ import annotations

import io
from types import MappingProxyType
from typing import Any

import pytest
from PIL import Image

from imagegate.domain import FinalImage, ImageJob, PartialImage
from imagegate.engines.adapt import Adapted, closest, plan, refusal
from imagegate.engines.base import Capabilities, SizeRule
from imagegate.engines.placeholder import PlaceholderEngine
from imagegate.engines.providers import GPT_IMAGE_1, GPT_IMAGE_2
from imagegate.images import fit

pytestmark = pytest.mark.anyio
GUIDE_SIZES = ((1080, 1080), (1080, 1920), (1200, 630), (1200, 675), (1200, 627))


def job(width: int = 1024, height: int = 1024, **fields: Any) -> ImageJob:
    wire = {"prompt": "a lighthouse", "size": fields.pop("size", f"{width}x{height}")}
    wire.update(fields.pop("wire", {}))
    return ImageJob(
        model="m",
        prompt="a lighthouse",
        width=width,
        height=height,
        passthrough=MappingProxyType(wire),
        **fields,
    )


@pytest.mark.parametrize(("size", "asked"), [((1080, 1080), "1024x1024"), ((1080, 1920), "1024x1536"),
                                             ((1200, 630), "1536x1024"), ((1200, 675), "1536x1024"),
                                             ((1200, 627), "1536x1024")])  # fmt: skip
def test_gpt_image_1_renders_the_guide_sizes_at_its_nearest_size(size: tuple[int, int], asked: str) -> None:
    the_plan = plan(job(*size), GPT_IMAGE_1)
    assert the_plan.job.size == asked and the_plan.job.passthrough["size"] == asked
    assert the_plan.fit_to == size and the_plan.notes == (f"size={asked}->{size[0]}x{size[1]}",)


def test_gpt_image_2_rounds_to_its_multiple_of_16_within_its_pixel_range() -> None:
    rule = GPT_IMAGE_2.size_rule
    assert rule is not None
    for size in GUIDE_SIZES:
        width, height = closest(*size, GPT_IMAGE_2)
        assert rule.allows(width, height), (size, width, height)
        assert width >= size[0] and height >= size[1]  # covers it: the crop only trims
    assert closest(1024, 1536, GPT_IMAGE_2) == (1024, 1536)  # renderable as is
    assert closest(512, 512, GPT_IMAGE_2) == (816, 816)  # lifted to the 655,360-pixel floor
    assert SizeRule().allows(*closest(3840, 1280, GPT_IMAGE_2))


def test_a_renderable_request_is_left_alone() -> None:
    the_plan = plan(job(1536, 1024), GPT_IMAGE_1)
    assert the_plan.notes == () and the_plan.job.size == "1536x1024" and the_plan.chunks == (1,)


def test_size_auto_is_the_providers_choice_never_cropped() -> None:
    the_plan = plan(job(1200, 630, size="auto"), GPT_IMAGE_1)
    assert the_plan.job.size == "1536x1024" and the_plan.job.passthrough["size"] == "auto"
    assert the_plan.fit_to is None and the_plan.notes == ()


def test_format_n_and_stream_are_adapted_and_named() -> None:
    caps = Capabilities(formats=("png", "jpeg"), max_n=2, streaming=False)
    the_plan = plan(
        job(n=5, output_format="webp", stream=True, partial_images=2, wire={"n": 5, "stream": True}), caps
    )
    assert the_plan.chunks == (2, 2, 1)
    assert the_plan.job.output_format == "png" and the_plan.job.passthrough["output_format"] == "png"
    assert not the_plan.job.stream and "stream" not in the_plan.job.passthrough
    assert the_plan.notes == ("format=png->webp", "stream=completed-only", "n=5->(2, 2, 1)")


@pytest.mark.parametrize(
    ("caps", "fields", "param"),
    [
        (Capabilities(alpha=False), {"background": "transparent"}, "background"),
        (Capabilities(masks=False), {"mask": "m"}, "mask"),
        (Capabilities(edits=False), {"images": ("i",)}, "image"),
        (Capabilities(max_images=1), {"images": ("i", "j")}, "image"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(
    caps: Capabilities, fields: dict[str, Any], param: str
) -> None:
    refused = refusal(job(**fields), caps)
    assert refused is not None and refused.param == param and refused.code == "unsupported_value"
    assert refusal(job(**fields), Capabilities()) is None


async def test_the_placeholder_behind_a_narrow_provider_delivers_the_exact_asked_images() -> None:
    caps = Capabilities(sizes=("1024x1024", "1536x1024"), formats=("png",), max_n=1, streaming=False)
    engine = Adapted(PlaceholderEngine(), caps)
    asked = job(1200, 630, n=3, output_format="webp", stream=True, partial_images=1)
    events = [e async for e in engine.run(asked)]
    assert all(isinstance(e, FinalImage) for e in events)  # no partials: the provider cannot stream
    assert sorted(e.index for e in events) == [0, 1, 2]
    for event in events:
        assert event.image is not None and event.image.size == (1200, 630)  # the gateway encodes webp
        assert event.adapted == (
            "size=1536x1024->1200x630",
            "format=png->webp",
            "stream=completed-only",
            "n=3->3x1",
        )


async def test_an_image_in_another_format_than_asked_is_converted_and_named() -> None:
    class Jpegs:  # a real engine whose provider writes JPEG whatever it is asked
        name = "jpegs"
        capabilities = Capabilities()

        def describe(self) -> str:
            return "jpeg"

        async def run(self, job: ImageJob):  # type: ignore[no-untyped-def]
            buffer = io.BytesIO()
            Image.new("RGB", (job.width, job.height), "red").save(buffer, "JPEG")
            yield FinalImage(index=0, encoded=buffer.getvalue(), media_type="image/jpeg")

    [event] = [e async for e in Adapted(Jpegs(), Capabilities()).run(job(64, 64))]
    assert event.encoded is None and event.image is not None and event.adapted == ("format=jpeg->png",)


async def test_a_plan_without_changes_passes_events_through_untouched() -> None:
    engine = Adapted(PlaceholderEngine(), Capabilities())
    events = [e async for e in engine.run(job(96, 64, stream=True, partial_images=1))]
    assert [type(e) for e in events] == [PartialImage, FinalImage] and all(not e.adapted for e in events)


def test_fit_crops_the_centre_then_resizes() -> None:
    image = Image.new("RGB", (300, 100), "black")
    image.paste((255, 0, 0), (100, 0, 200, 100))  # a red square in the middle third
    fitted = fit.fit(image, 50, 50)
    assert fitted.size == (50, 50) and fitted.getpixel((25, 25)) == (255, 0, 0)
    assert fitted.getpixel((1, 25))[0] > 200  # the black sides were cropped away
