"""Stage: gather the input images of a request as raw bytes, before anything decodes them.

Contract: `collect(request, http, settings)` returns the images in order (each with the
`param` name its errors will carry, e.g. "image[1]") and the mask, from multipart parts,
JSON `images: [{image_url}]` / `mask: {image_url}`, or the guide's `image` field (a URL, a
data URL, or a list of them). http(s) URLs are fetched with a timeout and a size cap.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from imagegate.config import Settings
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


async def collect(
    request: ImageRequest, http: httpx.AsyncClient, settings: Settings
) -> tuple[list[RawImage], RawImage | None]:
    if request.multipart:
        return _from_uploads(request)
    refs = _json_refs(request.params)
    images = [await _resolve(url, param, http, settings) for param, url in refs]
    mask = None
    # Generations take no mask: validate() rejects the field by name, without fetching it.
    mask_ref = request.params.get("mask") if request.kind == "edit" else None
    if mask_ref is not None:
        mask = await _resolve(_ref_url(mask_ref, "mask"), "mask", http, settings)
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
        raise InvalidValue(
            "Send the reference images in 'images' or in 'image', not both.", param="image"
        )
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


async def _resolve(url: str, param: str, http: httpx.AsyncClient, settings: Settings) -> RawImage:
    if url.startswith("data:"):
        data, media_type = parse_data_url(url, param=param)
        return RawImage(param, Payload(data), media_type)
    if url.startswith(("http://", "https://")):
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:  # not an httpx.HTTPError: "http://[::1", a port over 65535...
            parsed = None
        # httpx takes any port number, and connect() then fails with an OverflowError.
        if parsed is None or not parsed.host or not 0 < (parsed.port or 80) < 65536:
            raise InvalidValue(f"Invalid value for '{param}': not a valid URL.", param=param)
        return await _fetch(parsed, param, http, settings)
    raise InvalidValue(
        f"Invalid value for '{param}': expected an http(s) URL or a data URL.", param=param
    )


MAX_REDIRECTS = 5


async def _fetch(url: httpx.URL, param: str, http: httpx.AsyncClient, settings: Settings) -> RawImage:
    limit = settings.max_image_bytes
    timeout = settings.fetch_timeout_s
    try:
        # httpx's timeout bounds each read, not the download: a server trickling a byte at a
        # time would hold the request (and its worker) for as long as it liked.
        with anyio.fail_after(timeout):
            for _ in range(MAX_REDIRECTS + 1):
                if not settings.fetch_private_urls:
                    await _check_public(url, param)
                # Redirects are followed here, one hop at a time, so each target is checked.
                async with http.stream("GET", url, timeout=timeout, follow_redirects=False) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = resp.url.join(resp.headers["location"])
                        continue
                    if resp.status_code != 200:
                        raise InvalidImage(
                            f"Could not fetch '{param}': the server answered HTTP {resp.status_code}.",
                            param=param,
                        )
                    chunks: list[bytes] = []
                    total = 0
                    async for chunk in resp.aiter_bytes():
                        total += len(chunk)
                        if total > limit:
                            raise PayloadTooLarge(
                                f"The image at '{param}' is larger than {limit} bytes.", param=param
                            )
                        chunks.append(chunk)
                    declared = resp.headers.get("content-type", "").split(";")[0] or None
                    return RawImage(param, Payload(b"".join(chunks)), declared)
            raise InvalidImage(f"Could not fetch '{param}': too many redirects.", param=param)
    except TimeoutError as exc:
        raise InvalidImage(
            f"Could not fetch '{param}': the download took longer than {timeout:g} s.", param=param
        ) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise InvalidImage(
            f"Could not fetch '{param}': {type(exc).__name__}.", param=param
        ) from exc


async def _check_public(url: httpx.URL, param: str) -> None:
    """Refuse URLs whose host resolves to this gateway's own networks (SSRF). A DNS answer that
    changes between this check and the connection (rebinding) is not covered."""
    try:
        infos = await anyio.getaddrinfo(url.host, url.port or (443 if url.scheme == "https" else 80))
    except OSError as exc:
        raise InvalidImage(f"Could not fetch '{param}': the host does not resolve.", param=param) from exc
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if not address.is_global:
            raise InvalidValue(
                f"Invalid value for '{param}': this server does not fetch images from private, "
                "loopback or link-local addresses.",
                param=param,
            )


def _too_many(count: int, param: str) -> InvalidValue:
    return InvalidValue(
        f"Too many images: {count}. At most {MAX_IMAGES} images are allowed.", param=param
    )
