"""Stage: gather the input images of a request as raw bytes, before anything decodes them.

Contract: `collect(request, fetcher)` returns the images in order (each with the
`param` name its errors will carry, e.g. "image[1]") and the mask, from multipart parts,
JSON `images: [{image_url}]` / `mask: {image_url}`, or the guide's `image` field (a URL, a
data URL, or a list of them). http(s) URLs are fetched by the guarded fetcher (engines/fetch.py:
private addresses refused at every hop unless allowed, the address pinned, a timeout, a size cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagegate.engines.fetch import Fetcher, FetchError, FetchInvalidURL, FetchRefused, FetchTooLarge
from imagegate.errors import InvalidImage, InvalidType, InvalidValue, PayloadTooLarge
from imagegate.flow.request import ImageRequest
from imagegate.images.decode import parse_data_url
from imagegate.payload import Payload

MAX_IMAGES = 16


@dataclass(frozen=True, slots=True)
class RawImage:
    param: str
    source: Payload
    declared_type: str | None
    filename: str | None = None


async def collect(request: ImageRequest, fetcher: Fetcher) -> tuple[list[RawImage], RawImage | None]:
    if request.multipart:
        return _from_uploads(request)
    refs = _json_refs(request.params)
    images = [await _resolve(url, param, fetcher) for param, url in refs]
    mask = None
    # Generations take no mask: validate() rejects the field by name, without fetching it.
    mask_ref = request.params.get("mask") if request.kind == "edit" else None
    if mask_ref is not None:
        mask = await _resolve(_ref_url(mask_ref, "mask"), "mask", fetcher)
    return images, mask


# Multipart fields that must be file parts; text values would be silently lost.
_FILE_FIELDS = ("image", "image[]", "mask")


def _from_uploads(request: ImageRequest) -> tuple[list[RawImage], RawImage | None]:
    for name in _FILE_FIELDS:
        if isinstance(request.params.get(name), str):
            param = "image" if name == "image[]" else name
            expected = "a file" if name == "mask" else "one of an array of files or file"
            raise InvalidType(
                f"Invalid type for '{param}': expected {expected}, but got a string instead.",
                param=param,
            )
    files = [u for u in request.uploads if is_image_field(u.field)]
    if len(files) > MAX_IMAGES:
        raise _too_many(len(files), "image")
    images = [
        RawImage(f"image[{i}]" if len(files) > 1 else "image", u.payload, u.content_type, u.filename)
        for i, u in enumerate(files)
    ]
    masks = [u for u in request.uploads if u.field == "mask"]
    if len(masks) > 1:
        raise InvalidValue(
            f"Invalid value for 'mask': expected one file, but got {len(masks)}.", param="mask"
        )
    mask = RawImage("mask", masks[0].payload, masks[0].content_type, masks[0].filename) if masks else None
    return images, mask


def is_image_field(name: str) -> bool:
    """A multipart file part that carries an input image: image, image[] or image[N]."""
    return name == "image" or name.startswith("image[")


def _json_refs(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(param, URL) of each image in `images` (OpenAI's JSON edits) or `image` (the guide's
    spelling: one URL or a list). Null counts as absent, as for every other field."""
    images, image = params.get("images"), params.get("image")
    if images is not None and image is not None:
        raise InvalidValue("Send the reference images in 'images' or in 'image', not both.", param="image")
    if images is not None:
        if not isinstance(images, list):
            raise InvalidType("Invalid type for 'images': expected an array.", param="images")
        refs = [(f"images[{i}]", ref) for i, ref in enumerate(images)]
        name = "images"
    elif isinstance(image, list):
        refs = [(f"image[{i}]", ref) for i, ref in enumerate(image)]
        name = "image"
    elif image is not None:
        refs, name = [("image", image)], "image"
    else:
        return []
    if len(refs) > MAX_IMAGES:
        raise _too_many(len(refs), name)
    return [(param, _ref_url(ref, param)) for param, ref in refs]


def _ref_url(ref: Any, param: str) -> str:
    if isinstance(ref, str):
        return ref
    if isinstance(ref, dict):
        if "file_id" in ref:
            raise InvalidValue(
                f"Invalid value for '{param}': file_id references are not supported by this "
                "server; send the image as image_url (an https URL or a data URL).",
                param=param,
            )
        unknown = set(ref) - {"image_url"}
        if unknown:
            raise InvalidValue(f"Unknown parameter: '{param}.{sorted(unknown)[0]}'.", param=param)
        if isinstance(ref.get("image_url"), str):
            return str(ref["image_url"])
    raise InvalidType(
        f"Invalid type for '{param}': expected an object with 'image_url' (a URL or data URL).",
        param=param,
    )


async def _resolve(url: str, param: str, fetcher: Fetcher) -> RawImage:
    if url.startswith("data:"):
        data, media_type = parse_data_url(url, param=param)
        return RawImage(param, Payload(data), media_type)
    if not url.startswith(("http://", "https://")):
        raise InvalidValue(
            f"Invalid value for '{param}': expected an http(s) URL or a data URL.", param=param
        )
    try:
        data, declared = await fetcher.get(url)
    except FetchInvalidURL:
        raise InvalidValue(f"Invalid value for '{param}': not a valid URL.", param=param) from None
    except FetchRefused:
        raise InvalidValue(
            f"Invalid value for '{param}': this server does not fetch images from private, "
            "loopback or link-local addresses.",
            param=param,
        ) from None
    except FetchTooLarge:
        raise PayloadTooLarge(
            f"The image at '{param}' is larger than {fetcher.max_bytes} bytes.", param=param
        ) from None
    except FetchError as exc:
        raise InvalidImage(f"Could not fetch '{param}': {exc}.", param=param) from exc
    return RawImage(param, Payload(data), declared)


def _too_many(count: int, param: str) -> InvalidValue:
    return InvalidValue(f"Too many images: {count}. At most {MAX_IMAGES} images are allowed.", param=param)
