"""The S3 blob store end to end. Two replicas, each with a data directory of its own, sharing
PostgreSQL and one bucket (moto's server on loopback): an image made through one is served by the
other's signed URL, streamed from the bucket; with presigned URLs on, the URL handed out is the
bucket's and fetches the image. A bucket that does not answer fails the request, refunded."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from openai.types import ImagesResponse

from imagegate.http.serve import free_port
from tests.conftest import make_settings, run_server
from tests.services import AWS_TEST_ENV, Process, s3_client, spawn_server

ADMIN = "admin-for-the-s3-replicas"


def generate(live: Process, secret: str, prompt: str) -> ImagesResponse:
    with openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0) as client:
        return client.images.generate(prompt=prompt, size="256x256", quality="low", response_format="url")


def test_replicas_sharing_a_bucket_serve_each_others_images(
    tmp_path: Path, postgres_url: str, s3_endpoint: str, bucket: str
) -> None:
    shared = {
        **AWS_TEST_ENV,
        "IMAGEGATE_DATABASE_URL": postgres_url,
        "IMAGEGATE_ADMIN_KEY": ADMIN,
        "IMAGEGATE_URL_SECRET": "a-url-secret-both-replicas-share",
        "IMAGEGATE_SECRET_KEY": "cd" * 32,
        "IMAGEGATE_BLOB_STORE": f"s3://{bucket}/gateway",
        "IMAGEGATE_S3_ENDPOINT_URL": s3_endpoint,
    }
    with (
        spawn_server(tmp_path / "a", quiet=True, **shared) as a,
        spawn_server(tmp_path / "b", quiet=True, IMAGEGATE_S3_PRESIGNED_URLS="true", **shared) as b,
    ):
        made = httpx.post(
            a.base_url + "/admin/keys", json={"name": "k"}, headers={"Authorization": f"Bearer {ADMIN}"}
        )
        secret = made.json()["secret"]
        with openai.OpenAI(base_url=a.api_base, api_key=secret, max_retries=0) as client:
            by_a = client.images.generate(
                prompt="a lighthouse", size="256x256", quality="low", response_format="url"
            )
        with openai.OpenAI(base_url=b.api_base, api_key=secret, max_retries=0) as client:
            by_b = client.images.generate(
                prompt="a harbour", size="256x256", quality="low", response_format="url"
            )

        # A's signed URL, asked of B: B finds the row in the shared database, the bytes in the bucket.
        assert (
            by_a.data and by_a.data[0].url and by_a.data[0].url.startswith(a.base_url + "/v1/images/files/")
        )
        served = httpx.get(by_a.data[0].url.replace(a.base_url, b.base_url))
        assert served.status_code == 200, served.text
        name = urlsplit(by_a.data[0].url).path.rsplit("/", 1)[1]
        assert hashlib.sha256(served.content).hexdigest() + ".png" == name
        assert served.headers["content-type"] == "image/png"
        assert int(served.headers["content-length"]) == len(served.content)

        # B hands out the bucket's presigned URL, for the same lifetime as its own would have.
        assert by_b.data and by_b.data[0].url
        presigned = by_b.data[0].url
        assert presigned.startswith(f"{s3_endpoint}/{bucket}/gateway/") and "X-Amz-Expires=3600&" in presigned
        fetched = httpx.get(presigned)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        presigned_name = urlsplit(presigned).path.rsplit("/", 1)[1]
        assert hashlib.sha256(fetched.content).hexdigest() + ".png" == presigned_name

    listed = s3_client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(item["Key"] for item in listed) == sorted(
        f"gateway/{n[:2]}/{n}" for n in (name, presigned_name)
    )
    assert not (tmp_path / "a" / "blobs").exists() and not (tmp_path / "b" / "blobs").exists()


def test_a_bucket_that_does_not_answer_fails_the_request_refunded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload fails before the request's transaction: a 5xx, and the reservation refunded."""
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    nobody = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(tmp_path, blob_store="s3://gone/images", s3_endpoint_url=nobody)
    with run_server(settings) as live:
        secret = live.new_key("k", credit_micros=1_000_000)
        with (
            pytest.raises(openai.InternalServerError),
            openai.OpenAI(base_url=live.api_base, api_key=secret, max_retries=0) as client,
        ):
            client.images.generate(prompt="a lighthouse", size="256x256", quality="low")
        usage = httpx.get(live.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"}).json()
    assert usage["balance_usd"] == 1.0 and usage["spent_usd"] == 0 and usage["reserved_usd"] == 0
