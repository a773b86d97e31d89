"""Asynchronous jobs through the SDK: `submit` / `wait` give what `generate` gives, cancel, list,
failures raised as the SDK's errors, sync and async clients, against the real server on loopback
(and, for the polling schedule, a small fake jobs server)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from imagegate.client import (
    APIError,
    AsyncClient,
    Client,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
)
from tests.client.fake_upstream import FakeUpstream, tiny_png
from tests.conftest import LiveServer, make_settings, run_server
from tests.fakes.upstream import SERVER_ERROR, error
from tests.imaging import mask_png, pixels, png

ADMIN = "admin-key-for-the-sdk-job-tests"


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server without job runners: its jobs stay queued."""
    with run_server(make_settings(tmp_path_factory.mktemp("idle"), job_runners=0)) as live:
        yield live


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose one channel refuses every image (its jobs fail)."""
    with FakeUpstream() as upstream:
        upstream.default = error(
            400,
            "Your request was rejected by the safety system.",
            "moderation_blocked",
            "invalid_request_error",
        )
        settings = make_settings(tmp_path_factory.mktemp("refusing"), admin_key=ADMIN, job_poll_s=0.05)
        with run_server(settings) as live:
            channel = {
                "name": "refuses",
                "base_url": upstream.api_base,
                "api_key": "sk-up",
                "models": ["gpt-image-1"],
            }
            added = httpx.post(
                live.base_url + "/admin/channels", json=channel, headers={"Authorization": f"Bearer {ADMIN}"}
            )
            assert added.status_code == 201, added.text
            yield live


def balance(live: LiveServer, secret: str) -> float:
    usage = httpx.get(live.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"})
    return float(usage.json()["balance_usd"])


def test_submit_then_wait_gives_what_generate_gives(live: Client) -> None:
    params: dict[str, Any] = {"size": "256x256", "quality": "low", "seed": 11}
    job = live.submit("a lighthouse at dusk", **params)
    assert job.id is not None and job.id.startswith("imgjob_")
    assert job.status in ("queued", "in_progress") and not job.ended
    recorded = len(live.monitor.records)
    result = job.wait(poll_interval=0.05)
    sync = live.generate("a lighthouse at dusk", **params)
    assert job.status == "completed" and job.ended
    assert [pixels(i.bytes) for i in result] == [pixels(i.bytes) for i in sync]  # each signed anew
    assert (result.size, result.quality, result.seed, result.usage) == (
        sync.size,
        sync.quality,
        11,
        sync.usage,
    )
    assert (result.prompt, result.model, dict(result.params)) == (sync.prompt, sync.model, dict(sync.params))
    assert result.cost_micro_usd == sync.cost_micro_usd > 0 and not result.cost_estimated
    assert result.image.url and result.image.to_pil().size == (256, 256)
    assert job.wait() is result  # an ended job asks nothing more
    assert len(live.monitor.records) == recorded + 2  # the job once, then the generate
    assert live.jobs.get(job.id).refresh().status == "completed"


def test_an_edit_job_uploads_its_images_and_mask(live: Client) -> None:
    job = live.submit(
        "make it blue", images=[png(128, 96)], mask=mask_png(128, 96, (0, 0, 64, 48)), size="128x96"
    )
    result = job.wait(poll_interval=0.05)
    assert job.state.kind == "edit" and result.image.to_pil().size == (128, 96)
    with pytest.raises(ValueError, match="mask"):
        live.submit("no images", mask=png(8, 8))


def test_an_idempotency_key_submits_one_job(idle: LiveServer) -> None:
    with Client(idle.new_key("idem"), idle.api_base) as client:
        first = client.submit("once", idempotency_key="ig-test-submit-once")
        again = client.submit("once", idempotency_key="ig-test-submit-once")
        other = client.submit("once")
        assert again.id == first.id != other.id
        assert [j.id for j in client.jobs.list()] == [other.id, first.id]


def test_a_retried_submission_keeps_its_key_and_a_plain_answer_is_a_finished_job(fake: FakeUpstream) -> None:
    """The SDK's retry resends the same Idempotency-Key (imagegate returns the same job); a server
    that ignores `Prefer: respond-async` and answers with the images gives a completed job."""
    fake.push(SERVER_ERROR)
    with Client("sk-test", fake.api_base, sleep=lambda _s: None) as client:
        job = client.submit("plain", size="1024x1024")
        assert job.id is None and job.status == "completed"
        result = job.wait()
    posts = fake.posts()
    assert len(posts) == 2 and all(p.headers.get("prefer") == "respond-async" for p in posts)
    keys = {p.headers.get("idempotency-key") for p in posts}
    assert len(keys) == 1 and None not in keys
    assert result.image.bytes == fake.result_png(0) and result.usage is not None


def test_a_webhook_url_goes_with_the_submission_and_its_secret_is_shown_once(idle: LiveServer) -> None:
    hook = "http://127.0.0.1:9/hooks/images"  # never called: the idle server runs no job
    with Client(idle.new_key("hooks"), idle.api_base) as client:
        first = client.submit("with a hook", webhook_url=hook)
        assert first.webhook_secret and first.state.webhook == {"status": "pending", "attempts": 0}
        edit = client.submit("multipart, with a hook", images=[png(32, 32)], webhook_url=hook)
        assert edit.webhook_secret is None and edit.state.webhook is not None
        assert client.submit("without").state.webhook is None


def test_cancel_a_queued_job_refunds_it_and_wait_raises(idle: LiveServer) -> None:
    secret = idle.new_key("cancel")
    with Client(secret, idle.api_base) as client:
        job = client.submit("never drawn", quality="high", size="1024x1024")
        assert job.status == "queued" and job.refresh().queue_position is not None  # not in the 202
        assert balance(idle, secret) < 1000.0
        assert job.cancel() is job and job.status == "cancelled"
        with pytest.raises(JobCancelledError) as caught:
            job.wait()
        assert isinstance(caught.value, JobFailedError) and caught.value.code == "job_cancelled"
        assert caught.value.job.id == job.id and job.id in str(caught.value)
        assert client.monitor.records[-1].error_code == "job_cancelled"
        assert client.jobs.cancel(job.id).status == "cancelled"  # again: as it stands
    assert balance(idle, secret) == 1000.0


def test_wait_gives_up_after_its_timeout_and_the_job_goes_on(idle: LiveServer) -> None:
    with Client(idle.new_key("timeout"), idle.api_base) as client:
        job = client.submit("slow")
        with pytest.raises(JobTimeoutError) as caught:
            job.wait(timeout=0.3, poll_interval=0.05)
        assert isinstance(caught.value, TimeoutError) and caught.value.job.status == "queued"
        assert job.refresh().status == "queued"
        with pytest.raises(ValueError):
            job.wait(poll_interval=0)


def test_list_pages_newest_first_and_get_finds_a_job(idle: LiveServer) -> None:
    with Client(idle.new_key("pages"), idle.api_base) as client:
        ids = [client.submit(f"image {i}").id for i in range(3)]
        first = client.jobs.list(limit=2)
        assert [j.id for j in first] == ids[::-1][:2] and first.has_more and len(first) == 2
        assert first.first_id == ids[2] and first.last_id == ids[1]
        rest = client.jobs.list(limit=2, after=first.last_id)
        assert [j.id for j in rest] == [ids[0]] and not rest.has_more
        found = client.jobs.get(ids[0])
        assert found.status == "queued" and found.state.model == "gpt-image-1"
        with pytest.raises(NotFoundError):
            client.jobs.get("imgjob_nope")
    with Client(idle.new_key("stranger"), idle.api_base) as stranger:
        assert len(stranger.jobs.list()) == 0
        with pytest.raises(NotFoundError):
            stranger.jobs.get(ids[0])


def test_a_failed_job_raises_its_error_object(refusing: LiveServer) -> None:
    secret = refusing.new_key("refused")
    with Client(secret, refusing.api_base) as client:
        job = client.submit("something refused", quality="low")
        with pytest.raises(JobFailedError) as caught:
            job.wait(poll_interval=0.05)
        failure = caught.value
        assert not isinstance(failure, JobCancelledError) and isinstance(failure, APIError)
        assert (failure.code, failure.type) == ("moderation_blocked", "invalid_request_error")
        assert "rejected by the safety system" in failure.message and job.status == "failed"
        with pytest.raises(JobFailedError) as again:
            job.wait()
        assert again.value is failure  # raised again, recorded once
        records = [r for r in client.monitor.records if not r.success]
        assert len(records) == 1 and records[0].error_code == "moderation_blocked"
    assert balance(refusing, secret) == 1000.0  # refunded


def test_the_async_client_submits_waits_lists_and_cancels(server: LiveServer, idle: LiveServer) -> None:
    async def main() -> None:
        async with AsyncClient(server.new_key("async-jobs"), server.api_base) as client:
            job = await client.submit("async lighthouse", size="256x256", seed=5)
            result = await job.wait(poll_interval=0.05)
            sync = await client.generate("async lighthouse", size="256x256", seed=5)
            assert pixels(result.image.bytes) == pixels(sync.image.bytes)
            assert result.cost_micro_usd == sync.cost_micro_usd
            page = await client.jobs.list(limit=5)
            assert [j.id for j in page] == [job.id]
            assert (await (await client.jobs.get(job.id)).refresh()).status == "completed"
            assert pixels((await page.data[0].wait(poll_interval=0.05)).image.bytes) == pixels(
                sync.image.bytes
            )
        async with AsyncClient(idle.new_key("async-cancel"), idle.api_base) as client:
            queued = await client.submit("never drawn")
            with pytest.raises(JobTimeoutError):
                await queued.wait(timeout=0.1, poll_interval=0.05)
            assert (await queued.cancel()).status == "cancelled"
            with pytest.raises(JobCancelledError):
                await queued.wait()
            assert (await client.jobs.cancel(str(queued.id))).status == "cancelled"

    asyncio.run(main())


class FakeJobs:
    """A jobs server on loopback: a submission is queued; each GET answers `queued` (with
    `Retry-After` when set) until `polls` GETs were answered, then `completed` with one PNG."""

    def __init__(self, polls: int, retry_after: str | None = None) -> None:
        self.polls, self.retry_after, self.gets = polls, retry_after, 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"content-type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["content-length"]))
                self._answer(202, {"id": "imgjob_1", "object": "image.job", "status": "queued"})

            def do_GET(self) -> None:  # noqa: N802
                fake.gets += 1
                if fake.gets <= fake.polls:
                    headers = {"retry-after": fake.retry_after} if fake.retry_after else {}
                    self._answer(200, {"id": "imgjob_1", "status": "queued"}, headers)
                    return
                image = {"b64_json": base64.b64encode(tiny_png(3)).decode()}
                self._answer(200, {"id": "imgjob_1", "status": "completed", "result": {"data": [image]}})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ManualClock:
    def __init__(self) -> None:
        self.now, self.sleeps = 1000.0, list[float]()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("retry_after", "timeout", "expected"),
    [
        (None, None, [1.0, 1.5, 2.25, 3.0, 3.0]),  # x1.5 from poll_interval, capped at max_poll_interval
        ("7", None, [7.0, 7.0, 7.0, 7.0, 7.0]),  # the server's Retry-After when it is longer
        (None, 6.0, [1.0, 1.5, 2.25, 1.25]),  # never past the deadline
    ],
)
def test_polls_back_off_and_honour_retry_after(
    retry_after: str | None, timeout: float | None, expected: list[float]
) -> None:
    fake, clock = FakeJobs(polls=5, retry_after=retry_after), ManualClock()
    try:
        with Client("sk-test", fake.api_base, sleep=clock.sleep, clock=clock) as client:
            job = client.submit("slow")
            if timeout is None:
                assert job.wait(poll_interval=1.0, max_poll_interval=3.0).image.bytes == tiny_png(3)
            else:
                with pytest.raises(JobTimeoutError):
                    job.wait(timeout=timeout, poll_interval=1.0, max_poll_interval=3.0)
    finally:
        fake.close()
    assert clock.sleeps == expected


def test_jobs_are_exported() -> None:
    import imagegate.client as sdk

    for name in ("ImageJob", "AsyncImageJob", "JobPage", "JobState", "JobFailedError", "JobTimeoutError"):
        assert name in sdk.__all__ and hasattr(sdk, name)
