"""Sealing a PNG without handing c2pa-rs a Python stream: its data-hashed embeddable API.

`c2pa.Builder.sign` gives c2pa-rs the image as a Python BytesIO that it reads, seeks and writes
through ctypes callbacks: about 666 for a 1.1 MB PNG, each taking the GIL back from the event loop
while sealing runs on a worker thread. Here c2pa-rs never sees the image:
1. `c2pa_builder_data_hashed_placeholder`: the manifest as a `caBX` chunk of its final size;
2. the chunk goes right before IEND, and the data hash excludes exactly its bytes, so the hash of
   the sealed file is the SHA-256 of the PNG as it came (hashlib, which releases the GIL);
3. `c2pa_builder_sign_data_hashed_embeddable`, given that hash in its DataHash JSON and no stream,
   signs a chunk of the placeholder's length, spliced in: `png[:at] + chunk + png[at:]`.

Why before IEND: the sealed file and the PNG as it came then share everything up to the chunk,
which is all but the last 12 bytes. One SHA-256 pass over that prefix, copied, finishes both the
manifest's data hash and the sealed file's own SHA-256, its blob name (storage/blobs.py): a 1.1 MB
image is hashed once instead of twice (0.63 ms). The C2PA specification requires a `caBX` chunk and
only recommends that it precede IDAT (12.3.1.2); c2pa-rs, which puts its own after IHDR, finds and
validates one anywhere (tests/unit/provenance/test_embed.py reads every placement back).

c2pa-python (0.38) does not wrap these two functions: they are called on the library it loaded,
with its native handles, under its reservations (the same guards its own `Builder.sign` holds) and
with its error reading. Those are private names (see `PngEmbedder.__init__`), looked up when a
`Sealer` starts: provenance/sign.py goes back to `Builder.sign` when any of it is missing or fails.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
from typing import Any

import c2pa
from c2pa import c2pa as native  # the binding's module, where its private helpers live

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # length 0, type, CRC: the same in every PNG
PNG_MEDIA_TYPE = b"image/png"
_Bytes = ctypes.POINTER(ctypes.c_ubyte)


class EmbedError(Exception):
    """c2pa-rs returned a manifest that cannot be spliced where its hash says it is."""


def png_manifest_offset(data: bytes) -> int | None:
    """Where the manifest chunk goes: right before IEND, the chunk a PNG must end with. None when
    `data` does not open with the signature and IHDR, when a chunk already holds a manifest store
    (`caBX`: a parent to keep, which c2pa's writer handles), or when its first IEND (where readers
    stop) is not its last 12 bytes (bytes after it, a second IEND): c2pa's own writer then
    decides."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or not data.endswith(IEND_CHUNK):
        return None
    at, end = len(PNG_SIGNATURE), len(data) - len(IEND_CHUNK)
    while at < end:  # chunk headers only: a few dozen for a 1024x1024 image
        at += 12 + int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if kind == b"caBX" or (kind == b"IEND" and at < end):
            return None
    return at if at == end else None


def data_hash(digest: bytes, at: int, length: int) -> str:
    """The DataHash JSON that c2pa-rs reads (serde), for the SHA-256 `digest` of the sealed file
    without its bytes [at, at + length): `hash` and `pad` are serde_bytes, which JSON gives as
    arrays of byte values; a base64 string would be taken as the bytes of its text, and every
    manifest would fail its hash check."""
    return json.dumps(
        {
            "exclusions": [{"start": at, "length": length}],
            "name": "jumbf manifest",
            "alg": "sha256",
            "hash": list(digest),
            "pad": [],  # c2pa-rs pads the assertion to the placeholder's size itself
        }
    )


class PngEmbedder:
    """The two natives, bound once; stateless after that, so one serves every thread."""

    def __init__(self) -> None:
        # Private to c2pa-python: AttributeError here (a renamed helper, a library without the
        # functions) means the Sealer keeps to `Builder.sign`.
        lib = native._lib
        self._guards = (c2pa.Builder._exclusive_native_call, c2pa.Signer._native_call)
        self._check = native._check_ffi_operation_result
        self._free = lib.c2pa_free  # c2pa_manifest_bytes_free is its deprecated alias
        self._placeholder = lib.c2pa_builder_data_hashed_placeholder
        self._sign = lib.c2pa_builder_sign_data_hashed_embeddable
        out = ctypes.POINTER(_Bytes)
        # Opaque handles as void*: ctypes passes c2pa-python's typed pointers through unchanged.
        self._placeholder.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, out]
        self._placeholder.restype = ctypes.c_int64
        self._sign.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_void_p,  # the asset stream: NULL, the hash is in the JSON
            out,
        ]
        self._sign.restype = ctypes.c_int64

    def seal(self, builder: c2pa.Builder, signer: c2pa.Signer, png: bytes, at: int) -> tuple[bytes, str]:
        """`png` with `builder`'s manifest, signed by `signer`, as a chunk at byte `at`, and the
        SHA-256 (hex) of the result. The builder stays open (its owner closes it); c2pa errors
        come as `c2pa.C2paError`."""
        reserve = signer.reserve_size()
        exclusive, shared = self._guards
        with exclusive(builder):
            out = _Bytes()
            size = self._placeholder(builder._handle, reserve, PNG_MEDIA_TYPE, ctypes.byref(out))
            placeholder = self._take(size, out, "data-hashed placeholder")
        view = memoryview(png)
        prefix = hashlib.sha256(view[:at])  # what the PNG as it came and the sealed file share
        whole = prefix.copy()
        whole.update(view[at:])  # = the sealed file without the chunk: the manifest's data hash
        hashed = data_hash(whole.digest(), at, len(placeholder)).encode()
        with exclusive(builder), shared(signer):
            out = _Bytes()
            size = self._sign(
                builder._handle, signer._handle, hashed, PNG_MEDIA_TYPE, None, ctypes.byref(out)
            )
            chunk = self._take(size, out, "data-hashed signing")
        # The hash excludes exactly len(placeholder) bytes at `at`: a chunk of another length
        # would cover other bytes than those it was signed for (and padding it would need a new
        # chunk length and CRC).
        if len(chunk) != len(placeholder) or chunk[4:8] != b"caBX":
            raise EmbedError(
                f"signed manifest chunk of {len(chunk)} bytes for a {len(placeholder)}-byte placeholder"
            )
        prefix.update(chunk)
        prefix.update(view[at:])
        return b"".join((view[:at], chunk, view[at:])), prefix.hexdigest()

    def _take(self, size: int, out: Any, what: str) -> bytes:
        """The bytes c2pa-rs returned, copied and freed; or its error, raised (still inside the
        reservation, where c2pa-python reads errors)."""
        self._check(size, f"{what} failed: {{}}", check=lambda r: r < 0 or not out)
        try:
            return ctypes.string_at(out, size)
        finally:
            self._free(out)
