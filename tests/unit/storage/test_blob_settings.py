"""IMAGEGATE_BLOB_STORE and the S3 settings: what is accepted, what is refused at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from imagegate.config import Settings
from imagegate.storage.s3 import S3Url, client_config


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://images", "images", ""),
        ("s3://images/", "images", ""),
        ("s3://my-images.example/gateway", "my-images.example", "gateway/"),
        ("s3://b12/a/b/", "b12", "a/b/"),
    ],
)
def test_bucket_and_prefix(url: str, bucket: str, prefix: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, blob_store=url)
    assert S3Url.parse(settings.blob_store or "") == S3Url(bucket, prefix)


@pytest.mark.parametrize("url", ["images", "/var/images", "s3://", "s3://A_Bucket", "http://b/x", "s3://ab"])
def test_other_stores_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="blob_store"):
        Settings(data_dir=tmp_path, blob_store=url)


def test_presigned_urls_need_a_bucket_and_a_lifetime_s3_accepts(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs blob_store"):
        Settings(data_dir=tmp_path, s3_presigned_urls=True)
    with pytest.raises(ValidationError, match="7 days"):
        Settings(data_dir=tmp_path, blob_store="s3://images", s3_presigned_urls=True, url_ttl_s=8 * 86_400)
    Settings(data_dir=tmp_path, blob_store="s3://images", s3_presigned_urls=True, url_ttl_s=7 * 86_400)


def test_path_style_with_an_endpoint_unless_told(tmp_path: Path) -> None:
    def style(**fields: object) -> str:
        settings = Settings(data_dir=tmp_path, blob_store="s3://images", **fields)  # type: ignore[arg-type]
        return str(client_config(settings).s3["addressing_style"])  # type: ignore[index]

    assert style() == "auto"
    assert style(s3_endpoint_url="http://127.0.0.1:9000") == "path"
    assert style(s3_endpoint_url="https://r2.example", s3_addressing_style="virtual") == "virtual"
