"""An S3-compatible bucket (AWS S3, MinIO, Cloudflare R2) as the blob store's backend
(`IMAGEGATE_BLOB_STORE=s3://bucket/prefix`): storage/blobs.py `BlobBackend` over the S3 API.

boto3, not aiobotocore: the blob store is called synchronously where it is called today. The
request's unit of work writes its images inside a synchronous callable (storage/stores.py
`SqlRequestEnd`, storage/finish.py), the sweeper runs on a thread, and an image is served by
reading its body in chunks on worker threads; boto3's client is thread-safe, so it slots in where
the local directory's file calls were, with no second event loop and no async twin of
`ImageStore`. A bucket is a network away, so `remote` is True and those callers run its calls on
anyio's worker threads, never on the event loop nor on SQLite's one database thread.

Objects are written whole (PutObject: a reader never sees part of one) and read as a stream
(GetObject's body, never read whole to be served). Presigned GET URLs, when turned on, let
clients fetch straight from the bucket.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from imagegate.config import Settings
from imagegate.storage.blobs import Readable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

_MISSING = {"NoSuchKey", "404", "NotFound"}
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


class BlobStoreError(Exception):
    """The bucket refused to delete some objects (the sweep logs it; a lifecycle rule catches them)."""


@dataclass(frozen=True, slots=True)
class S3Url:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> S3Url:
        """s3://bucket/prefix (config.py checked the form) -> bucket and key prefix."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        return cls(bucket, prefix + "/" if prefix else "")


def client_config(settings: Settings) -> Config:
    style = settings.s3_addressing_style or ("path" if settings.s3_endpoint_url else "auto")
    return Config(
        s3={"addressing_style": style},
        # SigV4 everywhere: botocore would presign with SigV2 in some regions (us-east-1), which
        # newer regions and several S3-compatible servers refuse.
        signature_version="s3v4",
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        # anyio's worker threads (40) may all be reading or writing objects at once.
        max_pool_connections=40,
        # botocore >= 1.36 adds CRC checksums to every upload unless told otherwise, which several
        # S3-compatible servers refuse; only where the API requires one (DeleteObjects).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


class S3Bucket:
    """Blobs as objects under one key prefix of one bucket."""

    remote = True

    def __init__(self, client: S3Client, url: S3Url, presigned_urls: bool = False) -> None:
        self.client = client
        self.bucket = url.bucket
        self.prefix = url.prefix
        self.presigned_urls = presigned_urls

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Bucket:
        assert settings.blob_store is not None
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            # boto3 reads AWS_DEFAULT_REGION by itself; AWS_REGION is what the other SDKs read.
            region_name=settings.s3_region or os.environ.get("AWS_REGION") or None,
            config=client_config(settings),
        )
        return cls(client, S3Url.parse(settings.blob_store), settings.s3_presigned_urls)

    def put(self, key: str, data: bytes, media_type: str) -> None:
        # Always written: a HEAD first would cost a round trip to save one on the rare repeat.
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=media_type)

    def open(self, key: str) -> Readable | None:
        try:
            found = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return found["Body"]

    def delete(self, keys: Sequence[str]) -> None:
        refused: list[str] = []
        for i in range(0, len(keys), _DELETE_BATCH):
            batch: list[ObjectIdentifierTypeDef] = [
                {"Key": self.prefix + k} for k in keys[i : i + _DELETE_BATCH]
            ]
            answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            refused += [f"{e.get('Key')}: {e.get('Code')}" for e in answer.get("Errors", [])]
        if refused:
            raise BlobStoreError(f"{len(refused)} objects not deleted, e.g. {refused[0]}")

    def presigned_url(self, key: str, ttl_s: int) -> str | None:
        if not self.presigned_urls:
            return None
        # Signed here, with no request to the bucket (SigV4 over the key and the expiry).
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.prefix + key}, ExpiresIn=ttl_s
        )
