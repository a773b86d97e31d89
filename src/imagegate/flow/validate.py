"""Stage: turn a raw request into a frozen ImageJob (parse, don't validate).

Contract: `validate(request, images, mask, models, default_model, seed_source)` returns the
ImageJob and the ResponseOptions, or raises an InvalidRequest subclass whose `param` names
the field: unknown fields (unknown_parameter), missing prompt (missing_required_parameter),
out-of-range values (invalid_value), wrong types (invalid_type), bad uploads
(invalid_image_file / unsupported_file_mimetype), or ModelNotFound (404).

The guide's spellings are accepted where their meaning is clear: `format` -> output_format,
`compression` -> output_compression, `transparency: true` -> background "transparent",
`effort` -> the engine's detail knob, `image` (URL or data URL) on a generation -> an edit
with that reference image. Multipart values arrive as strings and are coerced here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from imagegate.domain import ImageJob, InputImage, JobKind
from imagegate.errors import (
    InvalidImage,
    InvalidType,
    InvalidValue,
    MissingParameter,
    ModelNotFound,
    UnknownParameter,
    invalid_choice,
)
from imagegate.flow.fetch_images import RawImage, is_image_field
from imagegate.flow.request import ImageRequest, ResponseOptions
from imagegate.images.decode import inspect_image, inspect_mask
from imagegate.images.sizes import auto_edit_size, auto_generation_size, parse_size
from imagegate.storage import bounds

MAX_PROMPT_CHARS = 32_000
QUALITIES = ("low", "medium", "high", "auto")
BACKGROUNDS = ("transparent", "opaque", "auto")
FORMATS = ("png", "jpeg", "webp")
LEVELS = ("low", "medium", "high")

# Every field the current openai SDK can send, plus imagegate's extensions and the guide's
# aliases. Anything else is an unknown_parameter, as OpenAI answers.
COMMON_FIELDS = frozenset(
    {
        "prompt",
        "model",
        "n",
        "quality",
        "size",
        "background",
        "moderation",
        "output_format",
        "output_compression",
        "stream",
        "partial_images",
        "response_format",
        "user",
        "safety_identifier",
        "complexity",
        "frame_count",
        "frame_duration_ms",
        "svg",
        # imagegate extension
        "seed",
        # the guide's spellings
        "format",
        "compression",
        "transparency",
        "effort",
    }
)
GENERATION_FIELDS = COMMON_FIELDS | {"image", "images", "input_fidelity"}
EDIT_FIELDS = COMMON_FIELDS | {"image", "image[]", "images", "mask", "input_fidelity", "markup"}
# Multipart edits upload files as image/image[]; JSON edits list URLs in images (or image).
MULTIPART_EDIT_FIELDS = EDIT_FIELDS - {"images"}
JSON_EDIT_FIELDS = EDIT_FIELDS - {"image[]"}
# DALL-E-only fields that GPT image models reject by name.
REJECTED_FIELDS = frozenset({"style"})
# Auto background turns transparent when the prompt asks for it.
_TRANSPARENT_HINT = re.compile(r"transparent background|no background|透明背景|透明底", re.I)


def validate(
    request: ImageRequest,
    images: list[RawImage],
    mask: RawImage | None,
    *,
    models: Collection[str],
    default_model: str,
    new_seed: Callable[[], int],
    max_input_pixels: int,
    max_request_pixels: int | None = None,
) -> tuple[ImageJob, ResponseOptions]:
    p = request.params
    _check_fields(request)
    prompt = _prompt(p)
    model = _model(p, models, default_model)

    # Checked from their headers; the pixels are decoded only for a local engine (ImageFlow.prepare).
    checked = [
        inspect_image(
            r.source,
            param=r.param,
            declared_type=r.declared_type,
            max_pixels=max_input_pixels,
            filename=r.filename,
        )
        for r in images
    ]
    kind: JobKind = "edit" if (request.kind == "edit" or checked) else "generation"
    if request.kind == "edit" and not checked:
        # Multipart edits upload `image` files; JSON edits list `images` (or the guide's `image`).
        raise MissingParameter("image" if request.multipart or "image" in p else "images")
    _check_uploads(request)
    _check_total_pixels(checked, mask, max_request_pixels)
    mask_image = None
    if mask is not None:
        if not checked:
            raise InvalidValue("A mask needs an image to apply to.", param="mask")
        mask_image = inspect_mask(
            mask.source,
            first=checked[0],
            param="mask",
            declared_type=mask.declared_type,
            filename=mask.filename,
        )

    output_format = _choice(p, "output_format", FORMATS, alias="format") or "png"
    background = _background(p, prompt, output_format)
    width, height = _size(p, prompt, checked)
    partial_images = _or(_int(p, "partial_images", 0, 3), 0)
    stream = _bool(p, "stream") or False
    response_format = _choice(p, "response_format", ("url", "b64_json"))
    _unsupported(p)

    job = ImageJob(
        model=model,
        prompt=prompt,
        kind=kind,
        n=_or(_int(p, "n", 1, 10), 1),
        width=width,
        height=height,
        # 'auto' quality resolves to medium: the guide's recommended default for most uses.
        quality=_resolve_auto(_choice(p, "quality", QUALITIES), "medium"),  # type: ignore[arg-type]
        background=background,  # type: ignore[arg-type]
        output_format=output_format,  # type: ignore[arg-type]
        output_compression=_or(_int(p, "output_compression", 0, 100, alias="compression"), 100),
        moderation=_choice(p, "moderation", ("auto", "low")) or "auto",  # type: ignore[arg-type]
        images=tuple(checked),
        mask=mask_image,
        input_fidelity=_choice(p, "input_fidelity", ("low", "high")) or "low",  # type: ignore[arg-type]
        seed=_seed(p, new_seed),
        partial_images=partial_images if stream else 0,
        stream=stream,
        effort=_choice(p, "effort", LEVELS) or _choice(p, "complexity", LEVELS),  # type: ignore[arg-type]
        user=_str(p, "user", bounds.USER),
        relay_json=kind == "edit" and not request.multipart,
    )
    job = replace(job, passthrough=_passthrough(p, job))
    options = ResponseOptions(
        include_b64=response_format != "url",
        include_url=response_format != "b64_json",
        stream=stream,
        safety_identifier=_str(p, "safety_identifier", bounds.USER),
    )
    return job, options


def _allowed_fields(request: ImageRequest) -> frozenset[str]:
    if request.kind != "edit":
        return GENERATION_FIELDS
    return MULTIPART_EDIT_FIELDS if request.multipart else JSON_EDIT_FIELDS


# OpenAI parameters relayed to upstream providers, when the client sent them.
RELAYED = (
    "prompt",
    "n",
    "quality",
    "size",
    "background",
    "moderation",
    "output_format",
    "output_compression",
    "stream",
    "partial_images",
    "user",
    "safety_identifier",
    "input_fidelity",
    "complexity",
)
_ALIASES = {"output_format": "format", "output_compression": "compression", "background": "transparency"}


def _passthrough(p: dict[str, Any], job: ImageJob) -> MappingProxyType[str, Any]:
    """The client's OpenAI parameters with aliases renamed and values typed (multipart strings
    become numbers and booleans), without imagegate's own fields (seed, response_format, effort)."""
    typed: dict[str, Any] = {
        "prompt": job.prompt,
        "n": job.n,
        "background": job.background,
        "moderation": job.moderation,
        "output_format": job.output_format,
        "output_compression": job.output_compression,
        "stream": job.stream,
        "partial_images": job.partial_images,
        "input_fidelity": job.input_fidelity,
    }
    out: dict[str, Any] = {}
    for name in RELAYED:
        alias = _ALIASES.get(name)
        if p.get(name) is None and (alias is None or p.get(alias) is None):
            continue
        out[name] = typed.get(name, p.get(name))
    if job.relay_json:
        refs = p.get("images")
        if refs is None:
            image = p.get("image")
            refs = [{"image_url": u} for u in (image if isinstance(image, list) else [image])]
        out["images"] = refs
        if p.get("mask") is not None:
            out["mask"] = p["mask"]
    return MappingProxyType(out)


def _check_fields(request: ImageRequest) -> None:
    allowed = _allowed_fields(request)
    for name in request.params:
        if name in REJECTED_FIELDS or name not in allowed:
            raise UnknownParameter(name)
        if (
            name in ("format", "output_format")
            and {"format", "output_format"} <= set(request.params)
            and request.params["format"] != request.params["output_format"]
        ):
            raise InvalidValue("Conflicting values for 'format' and 'output_format'.", param="format")


def _check_uploads(request: ImageRequest) -> None:
    """A file part that is neither an image nor the mask would be silently dropped."""
    for upload in request.uploads:
        name = upload.field
        if name == "mask" or is_image_field(name):
            continue
        if name in _allowed_fields(request):
            raise InvalidType(
                f"Invalid type for '{name}': expected a string, but got a file instead.", param=name
            )
        raise UnknownParameter(name)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _get(p: dict[str, Any], name: str, alias: str | None) -> tuple[str, Any]:
    if p.get(name) is not None:
        return name, p[name]
    if alias is not None and p.get(alias) is not None:
        return alias, p[alias]
    return name, None


def _prompt(p: dict[str, Any]) -> str:
    if "prompt" not in p or p["prompt"] is None:
        raise MissingParameter("prompt")
    prompt = p["prompt"]
    if not isinstance(prompt, str):
        raise InvalidType(
            f"Invalid type for 'prompt': expected a string, but got {_type_name(prompt)} instead.",
            param="prompt",
        )
    if not prompt.strip():
        raise InvalidValue(
            "Invalid 'prompt': string too short. Expected a string with minimum length 1, "
            "but got an empty string instead.",
            param="prompt",
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidValue(
            f"Invalid 'prompt': string too long. Expected a string with maximum length "
            f"{MAX_PROMPT_CHARS}, but got a string with length {len(prompt)} instead.",
            param="prompt",
        )
    return prompt


def _model(p: dict[str, Any], models: Collection[str], default_model: str) -> str:
    model = p.get("model")
    if model is None or model == "":
        model = default_model
    if not isinstance(model, str):  # (false, 0, [] and {} too: not silently the default)
        raise InvalidType("Invalid type for 'model': expected a string.", param="model")
    if model not in models:
        raise ModelNotFound(
            f"The model '{model}' does not exist or you do not have access to it. "
            "GET /v1/models lists the models this server serves.",
            param="model",
        )
    return model


def _str(p: dict[str, Any], name: str, max_length: int | None = None) -> str | None:
    value = p.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidType(
            f"Invalid type for '{name}': expected a string, but got {_type_name(value)} instead.",
            param=name,
        )
    if max_length is not None and len(value) > max_length:
        raise InvalidValue(
            f"Invalid '{name}': string too long. Expected a string with maximum length {max_length}, but "
            f"got a string with length {len(value)} instead.",
            param=name,
        )
    return value


def _choice(p: dict[str, Any], name: str, choices: tuple[str, ...], alias: str | None = None) -> str | None:
    param, value = _get(p, name, alias)
    if value is None:
        return None
    if not isinstance(value, str) or value not in choices:
        raise invalid_choice(param, value, choices)
    return value


def _int(p: dict[str, Any], name: str, lo: int, hi: int, alias: str | None = None) -> int | None:
    param, value = _get(p, name, alias)
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = _decimal(value, param, lo, hi)  # multipart sends numbers as decimal strings
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidType(
            f"Invalid type for '{param}': expected an integer, but got {_type_name(value)} instead.",
            param=param,
        )
    if not lo <= value <= hi:
        raise _out_of_range(param, lo, hi, value < lo, str(value))
    return value


# More digits than any bound here; int() of a huge string is slow, and refused past 4300 digits.
_MAX_DIGITS = 20


def _decimal(text: str, param: str, lo: int, hi: int) -> int:
    digits = text.strip().lstrip("-").lstrip("0")
    if len(digits) > _MAX_DIGITS:
        raise _out_of_range(param, lo, hi, text.strip().startswith("-"), text.strip())
    try:
        return int(text)
    except ValueError:  # a Unicode digit int() does not take (e.g. superscripts)
        raise InvalidType(
            f"Invalid type for '{param}': expected an integer, but got a string instead.",
            param=param,
        ) from None


def _out_of_range(param: str, lo: int, hi: int, below: bool, shown: str) -> InvalidValue:
    which = "below minimum" if below else "above maximum"
    if len(shown) > 40:
        shown = f"{shown[:20]}...({len(shown)} characters)"
    return InvalidValue(
        f"Invalid '{param}': integer {which} value. Expected a value between {lo} and {hi}, "
        f"but got {shown} instead.",
        param=param,
    )


def _bool(p: dict[str, Any], name: str) -> bool | None:
    value = p.get(name)
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # multipart sends booleans as "true"/"false"
    if not isinstance(value, bool):
        raise InvalidType(
            f"Invalid type for '{name}': expected a boolean, but got {_type_name(value)} instead.",
            param=name,
        )
    return value


def _resolve_auto(value: str | None, default: str) -> str:
    return default if value in (None, "auto") else str(value)


def _background(p: dict[str, Any], prompt: str, output_format: str) -> str:
    background = _choice(p, "background", BACKGROUNDS)
    param = "background"  # the field an error about the background names
    transparency = _bool(p, "transparency")
    if transparency is not None:
        implied = "transparent" if transparency else "opaque"
        if background not in (None, "auto", implied):
            raise InvalidValue(
                "Conflicting values for 'transparency' and 'background'.", param="transparency"
            )
        if background in (None, "auto"):
            param = "transparency"
        background = implied
    if background in (None, "auto"):
        wants_alpha = output_format != "jpeg" and _TRANSPARENT_HINT.search(prompt)
        return "transparent" if wants_alpha else "opaque"
    if background == "transparent" and output_format == "jpeg":
        raise InvalidValue(
            "Transparent background is not supported for output_format 'jpeg'. Use 'png' or 'webp'.",
            param=param,
        )
    return background


def _size(p: dict[str, Any], prompt: str, images: list[InputImage]) -> tuple[int, int]:
    value = p.get("size")
    if value is not None and not isinstance(value, str):
        raise InvalidType("Invalid type for 'size': expected a string.", param="size")
    parsed = parse_size(value) if value is not None else None
    if parsed is not None:
        return parsed
    if images:
        return auto_edit_size(*images[0].size)
    return auto_generation_size(prompt)


def _seed(p: dict[str, Any], new_seed: Callable[[], int]) -> int:
    seed = _int(p, "seed", 0, 2**32 - 1)
    return new_seed() if seed is None else seed


def _check_total_pixels(images: list[InputImage], mask: RawImage | None, most: int | None) -> None:
    """The decoded pixels of all the request's inputs (a mask is the first image's size), from
    their headers: over the budget is a 400 before anything is decoded."""
    if most is None:
        return
    sizes = [img.size for img in images] + ([images[0].size] if mask is not None and images else [])
    total = sum(w * h for w, h in sizes)
    if total > most:
        raise InvalidImage(
            f"The input images of this request add up to {total} pixels; at most {most} are accepted "
            "in one request. Send fewer or smaller images.",
            param="image",
        )


def _unsupported(p: dict[str, Any]) -> None:
    """Fields the SDK can send that no engine here serves: a clear 400, never silence."""
    for name in ("frame_count", "frame_duration_ms", "svg", "markup"):
        if p.get(name) is not None:
            raise InvalidValue(f"'{name}' is not supported by the models this server serves.", param=name)


def _type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a decimal",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)
