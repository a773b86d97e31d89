"""Asynchronous image jobs: rows any replica can claim (a conditional UPDATE, so two replicas
never run one job), held by a lease the runner renews; a job whose runner died (its lease
passed) is claimed again. Images live in the blob store; a job's `result` names them."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from imagegate.clock import Clock
from imagegate.storage.secretbox import SecretBox
from imagegate.storage.statements import Statement
from imagegate.storage.tables import image_jobs, webhook_secrets

_NEW_JOB_COLUMNS = (
    "id", "key_id", "status", "kind", "model", "request_id", "base_url", "params", "uploads", "multipart",
    "reservation_id", "reserved_micros", "idempotency_key", "webhook_url", "webhook_status", "created_at",
)  # fmt: skip
QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = "queued", "in_progress", "completed", "failed", "cancelled"
ENDED = (COMPLETED, FAILED, CANCELLED)


_INSERT = Statement(insert(image_jobs).inline(), _NEW_JOB_COLUMNS)  # compiled once (storage/statements.py)


def new_job_id() -> str:
    return "imgjob_" + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    key_id: int
    status: str
    kind: str
    model: str
    request_id: str
    base_url: str
    params: dict[str, Any]
    uploads: list[dict[str, Any]]
    multipart: bool
    reservation_id: str
    reserved_micros: int
    idempotency_key: str | None
    webhook_url: str | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    webhook_status: str | None
    webhook_attempts: int
    images_done: int = 0  # images the run under way has made (all of them once completed)


class DuplicateJob(Exception):
    """The key already submitted a job with this Idempotency-Key."""


class JobRepo:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def create(self, **values: Any) -> Job:
        values = {**values, "status": QUEUED, "created_at": self.clock.now()}
        values["params"] = json.dumps(values["params"])
        values["uploads"] = json.dumps(values.get("uploads") or []) or None
        values["multipart"] = int(bool(values.get("multipart")))
        values["webhook_status"] = "pending" if values.get("webhook_url") else None
        try:
            with self.engine.begin() as conn:
                _INSERT.run(conn, {name: values.get(name) for name in _NEW_JOB_COLUMNS})
        except IntegrityError as exc:
            raise DuplicateJob(values.get("idempotency_key")) from exc
        defaults = {"result": None, "error": None, "attempts": 0, "worker": None, "lease_until": None}
        defaults |= {
            "cancel_requested": 0,
            "started_at": None,
            "finished_at": None,
            "webhook_attempts": 0,
            "images_done": 0,
        }
        return _job({**defaults, **values})  # as read back, without reading it back

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(image_jobs).where(image_jobs.c.id == job_id)).first()
        return _job(row) if row is not None else None

    def by_idempotency_key(self, key_id: int, idempotency_key: str) -> Job | None:
        c = image_jobs.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(image_jobs).where(c.key_id == key_id, c.idempotency_key == idempotency_key)
            ).first()
        return _job(row) if row is not None else None

    def list_for(self, key_id: int, limit: int, after: str | None = None) -> list[Job]:
        """The key's jobs, newest first; `after`: the id of the last job of the previous page."""
        c = image_jobs.c
        query = select(image_jobs).where(c.key_id == key_id)
        if after is not None:
            mark = self.get(after)
            if mark is not None and mark.key_id == key_id:
                query = query.where(
                    or_(c.created_at < mark.created_at, and_(c.created_at == mark.created_at, c.id < mark.id))
                )
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def position(self, job: Job) -> int:
        """How many queued jobs were submitted before this one (0: next)."""
        c = image_jobs.c
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(c.status == QUEUED, c.created_at < job.created_at)
                ).scalar_one()
            )

    def claim(self, worker: str, lease_s: float, skip: set[str] | None = None) -> Job | None:
        """The oldest job that is queued, or running under a lease that passed (its runner died),
        now this worker's; None when there is none."""
        now = self.clock.now()
        c = image_jobs.c
        claimable = or_(c.status == QUEUED, and_(c.status == RUNNING, c.lease_until < now))
        with self.engine.connect() as conn:
            ids = [
                r[0]
                for r in conn.execute(select(c.id).where(claimable).order_by(c.created_at, c.id).limit(16))
            ]
        for job_id in ids:
            if skip and job_id in skip:
                continue
            with self.engine.begin() as conn:
                won = conn.execute(
                    update(image_jobs)
                    .where(c.id == job_id, claimable)
                    .values(
                        status=RUNNING,
                        worker=worker,
                        lease_until=now + lease_s,
                        attempts=c.attempts + 1,
                        started_at=func.coalesce(c.started_at, now),
                        images_done=0,  # a run again (its server died) starts over
                    )
                ).rowcount
            if won:
                return self.get(job_id)
        return None

    def requeue(self, job_id: str, worker: str) -> None:
        """Give a claimed job back (its key is at its concurrency limit): it waits its turn."""
        c = image_jobs.c
        with self.engine.begin() as conn:
            conn.execute(
                update(image_jobs)
                .where(c.id == job_id, c.worker == worker, c.status == RUNNING)
                .values(status=QUEUED, worker=None, lease_until=None, attempts=c.attempts - 1)
            )

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status (every status named, 0 included)."""
        c = image_jobs.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.status, func.count()).group_by(c.status)).all()
        return {status: 0 for status in (QUEUED, RUNNING, *ENDED)} | {row[0]: int(row[1]) for row in rows}

    def progress(self, job_id: str, worker: str, images_done: int) -> None:
        """The run this worker holds has made `images_done` images."""
        c = image_jobs.c
        with self.engine.begin() as conn:
            conn.execute(
                update(image_jobs)
                .where(c.id == job_id, c.worker == worker, c.status == RUNNING)
                .values(images_done=images_done)
            )

    def renew(self, job_id: str, worker: str, lease_s: float) -> tuple[bool, bool]:
        """Extend this worker's lease: (still its job, cancellation requested)."""
        c = image_jobs.c
        with self.engine.begin() as conn:
            held = conn.execute(
                update(image_jobs)
                .where(c.id == job_id, c.worker == worker, c.status == RUNNING)
                .values(lease_until=self.clock.now() + lease_s)
            ).rowcount
            cancel = conn.execute(select(c.cancel_requested).where(c.id == job_id)).scalar()
        return bool(held), bool(cancel)

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        worker: str | None = None,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        only_from: tuple[str, ...] = (QUEUED, RUNNING),
    ) -> bool:
        """End a job (by its worker, when given); False when it had already ended or moved on."""
        c = image_jobs.c
        where = [c.id == job_id, c.status.in_(only_from)]
        if worker is not None:
            where.append(c.worker == worker)
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(image_jobs)
                    .where(*where)
                    .values(
                        status=status,
                        result=json.dumps(result) if result is not None else None,
                        error=json.dumps(error) if error is not None else None,
                        finished_at=self.clock.now(),
                        lease_until=None,
                        webhook_next_at=self.clock.now(),
                    )
                ).rowcount
            )

    def request_cancel(self, job_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(image_jobs).where(image_jobs.c.id == job_id).values(cancel_requested=1))

    def due_webhooks(self, limit: int = 16) -> list[Job]:
        c = image_jobs.c
        query = (
            select(image_jobs)
            .where(c.webhook_status == "pending", c.status.in_(ENDED), c.webhook_next_at <= self.clock.now())
            .order_by(c.webhook_next_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def claim_webhook(self, job: Job, hold_s: float) -> bool:
        """Take one delivery attempt of the job's webhook (no other replica sends it meanwhile)."""
        c = image_jobs.c
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(image_jobs)
                    .where(
                        c.id == job.id,
                        c.webhook_status == "pending",
                        c.webhook_attempts == job.webhook_attempts,
                    )
                    .values(
                        webhook_attempts=job.webhook_attempts + 1, webhook_next_at=self.clock.now() + hold_s
                    )
                ).rowcount
            )

    def webhook_done(self, job_id: str, status: str, next_at: float | None = None) -> None:
        values: dict[str, Any] = {"webhook_status": status}
        if next_at is not None:
            values["webhook_next_at"] = next_at
        with self.engine.begin() as conn:
            conn.execute(update(image_jobs).where(image_jobs.c.id == job_id).values(**values))


def _job(row: Any) -> Job:
    r = row if isinstance(row, dict) else row._mapping
    return Job(
        id=r["id"],
        key_id=r["key_id"],
        status=r["status"],
        kind=r["kind"],
        model=r["model"],
        request_id=r["request_id"],
        base_url=r["base_url"],
        params=json.loads(r["params"]),
        uploads=json.loads(r["uploads"] or "[]"),
        multipart=bool(r["multipart"]),
        reservation_id=r["reservation_id"],
        reserved_micros=r["reserved_micros"],
        idempotency_key=r["idempotency_key"],
        webhook_url=r["webhook_url"],
        result=json.loads(r["result"]) if r["result"] else None,
        error=json.loads(r["error"]) if r["error"] else None,
        attempts=r["attempts"],
        cancel_requested=bool(r["cancel_requested"]),
        created_at=r["created_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        webhook_status=r["webhook_status"],
        webhook_attempts=r["webhook_attempts"],
        images_done=r["images_done"],
    )


class WebhookSecretRepo:
    """Each key's webhook signing secret ("whsec_" + base64 of 24 random bytes, the Standard
    Webhooks form), sealed at rest like channel keys; shown once, when made."""

    def __init__(self, engine: Engine, clock: Clock, box: SecretBox) -> None:
        self.engine = engine
        self.clock = clock
        self.box = box

    def rotate(self, key_id: int) -> str:
        """A new secret for the key (the old one stops signing at once)."""
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        sealed = self.box.seal(secret)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(webhook_secrets)
                .where(webhook_secrets.c.key_id == key_id)
                .values(secret_sealed=sealed, created_at=self.clock.now())
            ).rowcount
            if not done:
                conn.execute(
                    insert(webhook_secrets).values(
                        key_id=key_id, secret_sealed=sealed, created_at=self.clock.now()
                    )
                )
        return secret

    def get(self, key_id: int) -> str | None:
        with self.engine.connect() as conn:
            sealed = conn.execute(
                select(webhook_secrets.c.secret_sealed).where(webhook_secrets.c.key_id == key_id)
            ).scalar()
        if sealed is None:
            return None
        try:
            return self.box.open(sealed)
        except Exception:  # sealed with another secret key: as if none (the key holder rotates it)
            return None
