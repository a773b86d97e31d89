"""The placeholder engine and its artwork: determinism, sizes, alpha, masks, partials."""

from __future__ import annotations

import io
import random

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageStat

from imagegate.domain import EngineEvent, FinalImage, ImageJob, InputImage, PartialImage
from imagegate.engines.placeholder import PlaceholderEngine, palette_for, partial, render
from imagegate.engines.placeholder.context import LAYOUTS, context_for, detail_level
from imagegate.engines.placeholder.layouts import LAYOUT_FUNCTIONS
from imagegate.engines.placeholder.text import load_font, wrap_text
from imagegate.images.decode import decode_image

CAT = "一只可爱的卡通猫咪坐在笔记本电脑前编程,背景是现代化的办公室"
FOX = "a red fox in a blue forest, watercolor"


def job(**kwargs: object) -> ImageJob:
    values: dict[str, object] = {"model": "placeholder", "prompt": FOX}
    values.update(kwargs)
    return ImageJob(**values)  # type: ignore[arg-type]


def as_input(image: Image.Image) -> InputImage:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return decode_image(buffer.getvalue(), param="image")


def as_mask(alpha: Image.Image) -> InputImage:
    """An edit mask as a client uploads it: a PNG whose alpha channel is `alpha`."""
    mask = Image.new("RGBA", alpha.size, (0, 0, 0, 255))
    mask.putalpha(alpha)
    return as_input(mask)


def noise(size: tuple[int, int], seed: int = 1, mode: str = "RGB") -> Image.Image:
    channels = len(mode)
    data = random.Random(seed).randbytes(size[0] * size[1] * channels)
    return Image.frombytes(mode, size, data)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    stat = ImageStat.Stat(ImageChops.difference(a.convert("RGBA"), b.convert("RGBA")))
    return sum(stat.mean) / len(stat.mean)


def collect(engine: PlaceholderEngine, the_job: ImageJob) -> list[EngineEvent]:
    async def main() -> list[EngineEvent]:
        return [event async for event in engine.run(the_job)]

    return anyio.run(main)


# --------------------------------------------------------------------------- determinism


def test_same_job_gives_identical_pixels() -> None:
    first = render(job(seed=42), 0)
    second = render(job(seed=42), 0)
    assert first.tobytes() == second.tobytes()


def test_same_edit_gives_identical_pixels() -> None:
    base = as_input(noise((300, 200)))
    mask = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(mask).rectangle((50, 40, 250, 160), fill=0)
    the_job = job(kind="edit", images=(base,), mask=as_mask(mask), width=300, height=200)
    assert render(the_job, 0).tobytes() == render(the_job, 0).tobytes()


def test_seed_and_index_change_the_image() -> None:
    reference = render(job(seed=1), 0)
    assert render(job(seed=2), 0).tobytes() != reference.tobytes()
    assert render(job(seed=1), 1).tobytes() != reference.tobytes()
    assert mean_difference(render(job(seed=1), 1), reference) > 5


def test_quality_and_effort_change_the_detail() -> None:
    low = render(job(quality="low", effort="low", seed=3), 0)
    high = render(job(quality="high", effort="high", seed=3), 0)
    assert low.tobytes() != high.tobytes()
    assert detail_level("low", "low") == 0
    assert detail_level("medium", None) == 3
    assert detail_level("high", "high") == 6


def test_every_layout_family_renders() -> None:
    seen: set[str] = set()
    for seed in range(200):
        the_job = job(seed=seed, width=192, height=128)
        layout = context_for(the_job, 0).layout
        if layout in seen:
            continue
        seen.add(layout)
        for background in ("opaque", "transparent"):
            image = render(job(seed=seed, width=192, height=128, background=background), 0)
            assert image.size == (192, 128)
    assert seen == set(LAYOUTS)


def test_every_layout_family_has_a_painter() -> None:
    assert set(LAYOUT_FUNCTIONS) == set(LAYOUTS)


# --------------------------------------------------------------------------- size and alpha


@pytest.mark.parametrize(
    "size", [(1024, 1024), (1080, 1920), (1200, 627), (256, 256), (1536, 1024), (64, 40)]
)
def test_exact_size_and_mode(size: tuple[int, int]) -> None:
    image = render(job(width=size[0], height=size[1]), 0)
    assert image.size == size
    assert image.mode == "RGBA"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(16, 400),
    height=st.integers(16, 400),
    transparent=st.booleans(),
    prompt=st.text(max_size=80),
)
def test_any_size_and_prompt_renders(width: int, height: int, transparent: bool, prompt: str) -> None:
    background = "transparent" if transparent else "opaque"
    image = render(job(prompt=prompt, width=width, height=height, background=background), 0)
    assert image.size == (width, height)
    assert image.mode == "RGBA"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_transparent_background_has_true_alpha(seed: int) -> None:
    image = render(job(background="transparent", seed=seed, prompt="game asset, golden chest"), 0)
    histogram = image.getchannel("A").histogram()
    pixels = image.width * image.height
    assert histogram[0] > pixels * 0.2  # the backdrop
    assert histogram[255] > pixels * 0.2  # the emblem, card text
    assert image.getextrema()[3] == (0, 255)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_opaque_background_is_fully_opaque(seed: int) -> None:
    assert render(job(seed=seed), 0).getextrema()[3] == (255, 255)


# --------------------------------------------------------------------------- edits


def outside_regions(size: tuple[int, int], rect: tuple[int, int, int, int]) -> list[tuple]:
    w, h = size
    x0, y0, x1, y1 = rect
    return [(0, 0, w, y0), (0, y1, w, h), (0, y0, x0, y1), (x1, y0, w, y1)]


@pytest.mark.parametrize("background", ["opaque", "transparent"])
@pytest.mark.parametrize("base_mode", ["RGB", "RGBA"])
def test_mask_keeps_every_pixel_outside_the_edit_area(background: str, base_mode: str) -> None:
    size = (512, 384)
    rect = (100, 60, 380, 300)  # mask value 0 inside: edit here
    base = noise(size, seed=7, mode=base_mode)
    mask = Image.new("L", size, 255)
    ImageDraw.Draw(mask).rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=0)
    image = render(
        job(
            kind="edit",
            images=(as_input(base),),
            mask=as_mask(mask),
            width=size[0],
            height=size[1],
            background=background,
            prompt=CAT,
        ),
        0,
    )
    expected = base.convert("RGBA")
    assert image.size == size
    for box in outside_regions(size, rect):
        assert image.crop(box).tobytes() == expected.crop(box).tobytes()
    assert mean_difference(image.crop(rect), expected.crop(rect)) > 20


def test_mask_values_other_than_zero_all_mean_keep() -> None:
    size = (200, 200)
    base = noise(size, seed=3)
    mask = noise(size, seed=4, mode="L")  # every value 0..255; only 0 is editable
    image = render(job(kind="edit", images=(as_input(base),), mask=as_mask(mask), width=200, height=200), 0)
    keep = mask.point([0] + [255] * 255)
    kept = Image.composite(image, Image.new("RGBA", size, 0), keep)
    original = Image.composite(base.convert("RGBA"), Image.new("RGBA", size, 0), keep)
    assert kept.tobytes() == original.tobytes()


def test_mask_is_resized_with_the_base_when_the_job_size_differs() -> None:
    base = noise((256, 256), seed=9)
    mask = Image.new("L", (256, 256), 255)
    ImageDraw.Draw(mask).rectangle((64, 64, 191, 191), fill=0)
    image = render(job(kind="edit", images=(as_input(base),), mask=as_mask(mask), width=512, height=512), 0)
    resized = base.resize((512, 512), Image.Resampling.LANCZOS).convert("RGBA")
    rect = (128, 128, 384, 384)
    for box in outside_regions((512, 512), rect):
        assert image.crop(box).tobytes() == resized.crop(box).tobytes()
    assert mean_difference(image.crop(rect), resized.crop(rect)) > 20


def test_mask_with_nothing_to_edit_returns_the_base() -> None:
    base = noise((128, 96), seed=2)
    mask = Image.new("L", (128, 96), 200)
    image = render(job(kind="edit", images=(as_input(base),), mask=as_mask(mask), width=128, height=96), 0)
    assert image.tobytes() == base.convert("RGBA").tobytes()


def test_edit_without_mask_restyles_the_whole_base() -> None:
    base = noise((320, 240), seed=5)
    references = (as_input(base), as_input(Image.new("RGB", (90, 60), (200, 30, 30))))
    image = render(job(kind="edit", images=references, width=320, height=240), 0)
    assert image.size == (320, 240)
    assert image.getextrema()[3] == (255, 255)
    assert mean_difference(image, base) > 20


def test_transparent_edit_without_mask_keeps_the_base_alpha() -> None:
    base = noise((160, 120), seed=6, mode="RGBA")
    image = render(
        job(
            kind="edit",
            images=(as_input(base),),
            width=160,
            height=120,
            background="transparent",
            prompt="x",
        ),
        0,
    )
    # Outside the overlays (caption, prompt card and their shadows) the base's alpha is kept.
    same = ImageChops.difference(image.getchannel("A"), base.getchannel("A")).histogram()[0]
    assert same > 160 * 120 * 0.5


# --------------------------------------------------------------------------- palette, text


def test_palette_reads_english_and_chinese_colour_words() -> None:
    assert palette_for("a RED balloon")[0] == palette_for("一个红色的气球")[0]
    red = palette_for("a red balloon")[0]
    assert red[0] > 180 and red[1] < 100 and red[2] < 100
    assert palette_for("gray sky")[0] == palette_for("grey sky")[0]
    assert len(palette_for("a cozy reading nook")) == 5
    assert palette_for("a cozy reading nook") == palette_for("a cozy reading nook")
    assert palette_for("a cozy reading nook") != palette_for("a quiet harbour")


def test_palette_mixes_in_reference_colours() -> None:
    green = Image.new("RGB", (64, 64), (20, 200, 40))
    palette = palette_for("a red balloon", [green])
    assert (220, 50, 47) in palette
    assert any(abs(c[0] - 20) + abs(c[1] - 200) + abs(c[2] - 40) < 30 for c in palette)


def test_wrap_text_cjk_per_character_latin_per_word() -> None:
    font = load_font(24)
    lines = wrap_text(CAT, font, 200, 10)
    assert len(lines) > 1
    assert "".join(lines) == CAT
    assert all(font.getlength(line) <= 200 for line in lines)
    words = wrap_text("alpha beta gamma delta epsilon zeta eta theta", font, 150, 10)
    assert " ".join(words) == "alpha beta gamma delta epsilon zeta eta theta"


def test_wrap_text_truncates_with_an_ellipsis() -> None:
    font = load_font(20)
    lines = wrap_text("lorem ipsum dolor sit amet " * 200, font, 300, 3)
    assert len(lines) == 3
    assert lines[-1].endswith("…")
    assert all(font.getlength(line) <= 300 for line in lines)


def test_cjk_prompt_renders_and_differs_from_a_latin_one() -> None:
    cjk = render(job(prompt=CAT), 0)
    latin = render(job(prompt="a cartoon cat coding at a laptop in a modern office"), 0)
    assert cjk.size == latin.size == (1024, 1024)
    assert cjk.tobytes() != latin.tobytes()


@pytest.mark.parametrize(
    "prompt", ["", "   ", "a \ud800 lone surrogate\x00", "🦊🌲", "x" * 32000, "长" * 32000]
)
def test_odd_prompts_render(prompt: str) -> None:
    image = render(job(prompt=prompt, width=320, height=200), 0)
    assert image.size == (320, 200)


def test_font_has_simplified_chinese_glyphs() -> None:
    font = load_font(32)
    assert isinstance(font, ImageFont.FreeTypeFont)
    assert font.getname()[0].endswith("SC")
    assert font.getbbox("中文")[2] > 40


# --------------------------------------------------------------------------- partials


@pytest.mark.parametrize("total", [1, 2, 3, 5])
def test_partials_sharpen_towards_the_final(total: int) -> None:
    final = render(job(seed=11), 0)
    previews = [partial(final, k, total) for k in range(total)]
    distances = [mean_difference(p, final) for p in previews]
    assert all(p.size == final.size and p.mode == final.mode for p in previews)
    assert all(a > b for a, b in zip(distances, distances[1:], strict=False))
    assert distances[-1] > 0
    assert previews[-1].tobytes() != final.tobytes()


def test_partials_keep_transparency() -> None:
    final = render(job(background="transparent"), 0)
    preview = partial(final, 0, 2)
    assert preview.mode == "RGBA"
    assert preview.getextrema()[3][0] == 0


# --------------------------------------------------------------------------- engine


def test_engine_describes_itself() -> None:
    engine = PlaceholderEngine()
    assert engine.name == "placeholder"
    assert "no model weights" in engine.describe()


def test_engine_streams_partials_then_finals() -> None:
    the_job = job(n=2, partial_images=2, stream=True, width=256, height=256)
    events = collect(PlaceholderEngine(), the_job)
    shape = [
        (type(e).__name__, e.index, e.partial_index if isinstance(e, PartialImage) else None) for e in events
    ]
    assert shape == [
        ("PartialImage", 0, 0),
        ("PartialImage", 0, 1),
        ("FinalImage", 0, None),
        ("PartialImage", 1, 0),
        ("PartialImage", 1, 1),
        ("FinalImage", 1, None),
    ]
    for event in events:
        assert event.image is not None and event.image.size == (256, 256)
    finals = [e for e in events if isinstance(e, FinalImage)]
    assert finals[0].image is not None and finals[1].image is not None
    assert finals[0].image.tobytes() == render(the_job, 0).tobytes()
    assert finals[0].image.tobytes() != finals[1].image.tobytes()


def test_engine_without_stream_yields_only_finals() -> None:
    events = collect(PlaceholderEngine(), job(n=2, partial_images=2, stream=False, width=128, height=128))
    assert [type(e) for e in events] == [FinalImage, FinalImage]
    assert [e.index for e in events] == [0, 1]


def _thumb_diff(a: Image.Image, b: Image.Image) -> float:
    a16, b16 = (im.convert("RGB").resize((16, 16), Image.Resampling.BOX) for im in (a, b))
    return sum(ImageStat.Stat(ImageChops.difference(a16, b16)).mean) / 3


def _edges(image: Image.Image) -> float:
    return float(ImageStat.Stat(image.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0])


@pytest.mark.parametrize("seed", range(8))
def test_the_same_seed_is_the_same_picture_at_every_quality_with_more_detail(seed: int) -> None:
    """Hardening: the guide's tip (preview at low quality, then render the same at high) needs the
    same composition at every quality and effort; higher ones add detail."""

    def draw(quality: str, effort: str | None = None, at: int = seed) -> Image.Image:
        job = ImageJob(
            model="m",
            prompt="a lighthouse on a cliff at sunset",
            quality=quality,  # type: ignore[arg-type]
            effort=effort,
            seed=at,
            width=384,
            height=384,
        )  # type: ignore[arg-type]
        return render(job, 0)

    low, high = draw("low"), draw("high")
    assert _thumb_diff(low, high) < 8  # the same picture, seen small
    assert _thumb_diff(draw("medium", "low"), draw("medium", "high")) < 8
    assert _thumb_diff(low, draw("low", at=seed + 1000)) > _thumb_diff(low, high)  # another seed differs more
    assert _edges(high) > _edges(draw("medium")) > _edges(low)  # more detail at higher quality
