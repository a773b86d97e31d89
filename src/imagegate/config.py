"""Settings: environment variables `IMAGEGATE_*`, optionally a TOML file named by IMAGEGATE_CONFIG.

Every field has a default and a description; `Settings()` is never built at import time,
only by the CLI or by tests, and handed to `create_app(settings)`.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, IPvAnyNetwork, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from imagegate.pricing import ModelPrice, default_prices

# The model names a fresh install answers to (the current SDK's GPT image models).
DEFAULT_MODELS = (
    "gpt-image-1",
    "gpt-image-1-mini",
    "gpt-image-1.5",
    "gpt-image-2",
    "chatgpt-image-latest",
)
PRESIGNED_MAX_S = 7 * 86_400  # S3's limit on a presigned URL's lifetime (SigV4)


class ModerationRule(BaseModel):
    """One prompt-policy rule: any listed term (case-insensitive substring) blocks the prompt."""

    category: str = Field(description="Reported in safety_violations, e.g. 'likeness'.")
    terms: list[str] = Field(default_factory=list, description="Terms that trigger the rule.")
    applies_at_low: bool = Field(
        default=False, description="Also enforced when the request says moderation='low'."
    )


class Tier(BaseModel):
    """A tier's limits (None = unlimited) and price multiplier; keys may override each number."""

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute (token bucket).")
    rpd: int | None = Field(default=None, ge=1, description="Requests per UTC day.")
    ipm: int | None = Field(default=None, ge=1, description="Images per minute (n=10 counts 10).")
    concurrency: int | None = Field(default=None, ge=1, description="Requests in flight at once.")
    multiplier_ppm: int = Field(
        default=1_000_000, ge=0, description="Price multiplier in parts per million (1x = 1000000)."
    )


def _default_tiers() -> dict[str, Tier]:
    # The guide's relay: free 20/min and 150/day, tier 1 60/min, tier 2 100/min, 5 concurrent.
    return {
        "free": Tier(rpm=20, rpd=150, ipm=20, concurrency=5),
        "tier1": Tier(rpm=60, ipm=60, concurrency=5),
        "tier2": Tier(rpm=100, ipm=100, concurrency=5),
        "internal": Tier(),
    }


def _default_rules() -> list[ModerationRule]:
    # The guide warns against celebrity likenesses and brand logos; those relax at 'low'.
    return [
        ModerationRule(
            category="likeness",
            terms=[
                "taylor swift",
                "elon musk",
                "donald trump",
                "joe biden",
                "barack obama",
                "xi jinping",
                "beyonce",
                "kim kardashian",
                "leonardo dicaprio",
                "scarlett johansson",
                "tom cruise",
                "jackie chan",
                "成龙",
                "刘德华",
                "周杰伦",
                "杨幂",
                "范冰冰",
                "马斯克",
                "celebrity likeness",
                "明星肖像",
            ],
        ),
        ModerationRule(
            category="trademark",
            terms=[
                # The brands, not the words: "a red apple logo for my fruit shop" is the shop's own.
                "nike logo",
                "apple inc logo",
                "apple computer logo",
                "iphone logo",
                "macbook logo",
                "coca-cola logo",
                "mcdonald's logo",
                "starbucks logo",
                "google logo",
                "adidas logo",
                "disney logo",
                "mickey mouse",
                "louis vuitton logo",
                "gucci logo",
                "耐克标志",
                "苹果公司标志",
                "可口可乐标志",
                "品牌标志",
            ],
        ),
        ModerationRule(
            category="sexual/minors",
            terms=["child porn", "underage nude", "儿童色情"],
            applies_at_low=True,
        ),
    ]


def default_workers() -> int:
    """One worker process per CPU core this process may run on, at most 8."""
    return max(
        1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


class Settings(BaseSettings):
    """imagegate's configuration. Environment variables win over the TOML file."""

    model_config = SettingsConfigDict(env_prefix="IMAGEGATE_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address `imagegate serve` binds.")
    port: int = Field(default=8000, description="Port `imagegate serve` listens on.")
    workers: int = Field(
        default_factory=lambda: default_workers(),
        ge=1,
        le=64,
        description="Processes `imagegate serve` runs (default: one per CPU core, at most 8). Limits, "
        "balances and circuit breakers stay exact across them: in Redis when redis_url is set, else "
        "in <data_dir>/workers.sqlite, which they share.",
    )
    keep_large_buffers: bool = Field(
        default=True,
        description="Serve large allocations (an image's buffers) from the heap and keep freed heap "
        "memory for the next request (glibc), instead of mapping and faulting in fresh pages each "
        "time: less CPU per relayed image, at the cost of keeping the peak heap (imagegate.process).",
    )
    metrics: Literal["admin", "open", "off"] = Field(
        default="admin",
        description="GET /metrics (Prometheus): behind the admin key (admin), for anyone who can "
        "reach the server (open: a scraper on a private network), or not served (off).",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text, or as one JSON object each (with a line per images request: "
        "request id, key id, model, engine, channel, status, latency, cost; never a key).",
    )
    log_prompts: bool = Field(default=False, description="Put the prompt in each images request's log line.")
    provenance: bool = Field(
        default=True,
        description="Embed a signed C2PA manifest in every stored image (model, engine, "
        "trainedAlgorithmicMedia; an edit's inputs as ingredients). See provenance_cert.",
    )
    provenance_cert: Path | None = Field(
        default=None,
        description="PEM chain that signs the manifests (the signer's certificate first), with "
        "provenance_key; unset: a CA and a signer made once in <data_dir>/provenance/, whose ca.pem "
        "readers can trust.",
    )
    provenance_key: Path | None = Field(
        default=None, description="PEM private key (ES256) of provenance_cert's signer."
    )
    data_dir: Path = Field(
        default=Path("./imagegate-data"), description="Database, image blobs and secrets live here."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/imagegate.db."
    )
    redis_url: str | None = Field(default=None, description="Unset: in-process limits and caches.")
    redis_prefix: str = Field(
        default="imagegate:", description="Prefix of every Redis key (several gateways on one Redis)."
    )
    admin_key: str | None = Field(default=None, description="Bearer key for /admin/ endpoints.")
    public_base_url: str | None = Field(
        default=None,
        description="Base of the image URLs handed out (e.g. https://img.example.com); "
        "default: the URL the client called.",
    )
    url_secret: str | None = Field(
        default=None,
        description="HMAC secret that signs image URLs; default: generated once and kept in "
        "<data_dir>/url-secret.",
    )
    url_ttl_s: int = Field(default=3600, description="How long a signed image URL stays valid.")
    image_retention_s: int = Field(
        default=86_400, description="How long stored images are kept before the sweeper deletes them."
    )
    sweep_interval_s: int = Field(default=300, description="How often expired images are swept.")
    blob_store: str | None = Field(
        default=None,
        pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$",
        description="Where image bytes live: unset, <data_dir>/blobs; s3://bucket/prefix, an "
        "S3-compatible bucket (AWS S3, MinIO, R2; credentials from AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or any source boto3 reads), shared by every replica.",
    )
    blob_direct_io: bool = Field(
        default=True,
        description="Write local blobs of 256 KiB and more with O_DIRECT, past the page cache "
        "(storage/direct_io.py): on VMs whose free memory goes back to the host it cuts a 1.1 MB "
        "image's write from 4.4 to 0.6 ms of CPU; the write then waits for the disk. Off: "
        "buffered writes. A file system that refuses O_DIRECT gets buffered writes either way.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="The S3 API's URL (MinIO, R2...); unset: AWS S3 in the region."
    )
    s3_region: str | None = Field(
        default=None, description="The bucket's region; unset: AWS_REGION, else AWS_DEFAULT_REGION."
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] | None = Field(
        default=None,
        description="Bucket in the path (http://host/bucket/key) or in the host name; unset: path with "
        "an endpoint URL (what MinIO and most S3-compatible servers expect), else boto3's choice.",
    )
    s3_presigned_urls: bool = Field(
        default=False,
        description="Hand out the bucket's own presigned URLs (valid url_ttl_s, at most 7 days) "
        "instead of imagegate's signed ones: clients fetch images from the bucket, not through "
        "imagegate. The endpoint must then be reachable by clients.",
    )
    max_body_bytes: int = Field(default=128 * 1024 * 1024, description="Requests with larger bodies get 413.")
    max_image_bytes: int = Field(
        default=50 * 1024 * 1024, description="Largest single input image (OpenAI: < 50 MB)."
    )
    max_input_pixels: int = Field(
        default=50_000_000, description="Decoded input images beyond this are refused (bombs)."
    )
    header_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A request's headers must arrive within this (of the connection "
        "opening, or of the request's first byte on a kept-alive one); else 408 and the connection closes.",
    )
    body_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="A request's body must arrive within this of its headers; else 408 "
        "(or the connection closes).",
    )
    keep_alive_timeout_s: float = Field(
        default=5.0, gt=0, description="An idle kept-alive connection is closed after this."
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Concurrent connections (and requests) one process serves; beyond it new ones get 503.",
    )
    max_request_pixels: int = Field(
        default=64_000_000,
        ge=1,
        description="All of one request's input images and mask together, in decoded pixels (16 images "
        "of 2000x2000): more is refused before anything is decoded (400), so a few decompression bombs "
        "cannot take the server's memory.",
    )
    fetch_private_urls: bool = Field(
        default=False,
        description="Allow reference-image URLs that resolve to loopback, private or link-local "
        "addresses (off: a client cannot make the gateway fetch from its own network).",
    )
    fetch_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="Timeout for downloading an image given as an http(s) URL (a "
        "client's reference image, or a provider's answer), redirects included.",
    )
    fetch_private_provider_urls: bool = Field(
        default=False,
        description="Allow image URLs in a provider's answer that resolve to loopback, private or "
        "link-local addresses (off: a provider cannot make the gateway fetch from its own network; the "
        "channel's own base URL is the operator's and is not checked).",
    )
    max_provider_image_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1,
        description="Largest image downloaded from a provider's answer URL.",
    )
    default_model: str = Field(default="gpt-image-1", description="Used when a request names none.")
    models: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MODELS),
        description="Model names served by the placeholder engine when nothing else serves them.",
    )
    moderation_rules: list[ModerationRule] = Field(
        default_factory=_default_rules, description="Prompt policy behind moderation='auto'/'low'."
    )
    moderation_channel: str | None = Field(
        default=None,
        description="A channel whose OpenAI-style /v1/moderations endpoint checks every prompt "
        "(moderation 'auto') before generating, in addition to the rules; unreachable: 503 (fails closed).",
    )
    tiers: dict[str, Tier] = Field(
        default_factory=_default_tiers, description="Tier name -> limits and price multiplier."
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=default_prices,
        description="Model -> prices in micro-dollars; '*' prices every other model.",
    )
    local_engines: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Local engine kind -> the model names it serves (kinds: 'placeholder' and the allowed "
        'plugins), e.g. {"my-engine": ["my-model"]}.',
    )
    engine_plugins: list[str] = Field(
        default_factory=list,
        description="Names of third-party engines (entry points in the group 'imagegate.engines') "
        "that may be loaded; nothing else installed is ever imported.",
    )
    placeholder_price: ModelPrice = Field(
        default_factory=lambda: ModelPrice(text_in_per_1m=0, image_in_per_1m=0, image_out_per_1m=0),
        description="What a key pays for images the offline placeholder draws (default: nothing, so a "
        "newcomer's trial credit is not spent on placeholder art); the same shape as a `prices` entry.",
    )
    trial_credit_usd: Decimal = Field(
        default=Decimal("5"), ge=0, description="Starting balance of a new key (the guide's $5)."
    )
    reservation_timeout_s: int = Field(
        default=900,
        ge=1,
        description="Unsettled reservations older than this are released (their process died); also "
        "the concurrency-lease TTL and how long a pending Idempotency-Key waits. A running request renews "
        "all three every third of this, so a slow provider never outlives them.",
    )
    idempotency_ttl_s: int = Field(default=86_400, description="How long Idempotency-Keys are kept.")
    history_retention_s: int = Field(
        default=30 * 86_400,
        ge=0,
        description="How long the image history (GET /v1/images/history) keeps each request's record "
        "(prompt, parameters, cost, input and output hashes); the images themselves live "
        "image_retention_s.",
    )
    console_session_ttl_s: int = Field(
        default=12 * 3600,
        ge=60,
        description="How long a sign-in to the web console (/console) lasts before it must be made again.",
    )
    history_prompts: bool = Field(
        default=True,
        description="Keep prompts in the image history (false: the rest is kept, the prompt not).",
    )
    job_runners: int = Field(
        default=2,
        ge=0,
        le=256,
        description="Asynchronous jobs (Prefer: respond-async) this process runs at once (0: none).",
    )
    job_timeout_s: int = Field(
        default=3600,
        ge=60,
        description="A job not started within this after its submission fails and is refunded (its "
        "reservation is held that long).",
    )
    job_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="A running job's lease, renewed every third of it: a job whose replica died is run "
        "again by another once its lease has passed.",
    )
    job_max_attempts: int = Field(
        default=3, ge=1, le=100, description="Runs of one job (its replica died) before it fails, refunded."
    )
    job_poll_s: float = Field(
        default=0.5, gt=0, description="How often an idle runner looks for queued jobs."
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="How long a webhook receiver may take.")
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Deliveries of one webhook (with backoff) before it is given up."
    )
    webhook_backoff_s: float = Field(
        default=5.0, gt=0, description="The first retry's delay; each next one waits 4x longer (max 1 h)."
    )
    auth_max_failures: int = Field(
        default=10,
        ge=0,
        description="Wrong keys one client address may send to the admin API or the console's "
        "sign-in within auth_failure_window_s before it is refused (429) for the rest of that "
        "window; 0: no limit.",
    )
    auth_failure_window_s: float = Field(
        default=900.0, gt=0, description="The window of auth_max_failures, from the first failure."
    )
    auth_exempt: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")],
        description="Networks whose wrong keys are never counted nor refused (default: the "
        "loopback, so an operator can always sign in on the machine itself).",
    )
    rate_limit_fail_open: bool = Field(
        default=False,
        description="If the Redis rate-limit store is unreachable: false = 503 (fail closed), "
        "true = admit without limits.",
    )
    secret_key: str | None = Field(
        default=None,
        description="64 hex characters: the AES key sealing upstream channel keys at rest; default: "
        "generated once into <data_dir>/secret-key.",
    )
    upstream_max_attempts: int = Field(default=3, ge=1, description="Attempts per request over all channels.")
    upstream_deadline_s: float = Field(default=300.0, gt=0, description="Total time for all attempts.")
    upstream_backoff_s: float = Field(
        default=0.25, ge=0, description="First retry delay; doubles per attempt (jittered), capped at 4 s."
    )
    breaker_failure_threshold: int = Field(default=5, ge=1, description="Consecutive failures that open.")
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1, description="Failure rate that opens...")
    breaker_min_requests: int = Field(default=20, ge=1, description="...over at least this many requests")
    breaker_window_s: float = Field(default=60.0, gt=0, description="...within this window.")
    breaker_cooldown_s: float = Field(default=30.0, gt=0, description="Open -> one probe after this.")
    access_log: bool = Field(
        default=False,
        description="uvicorn's line per request on stderr (off, as in gunicorn: it cost "
        "about 0.4 ms a request). Every images request leaves a usage record anyway (imagegate usage).",
    )
    channel_refresh_s: float = Field(
        default=5.0, gt=0, description="How often each gateway reloads channels from the database."
    )
    channel_probe_interval_s: float = Field(
        default=60.0, gt=0, description="How often auto-disabled channels are probed for re-enabling."
    )
    channel_balance_probe_s: float = Field(
        default=600.0,
        ge=0,
        description="How often a channel disabled for lack of balance is probed with "
        "one real low-quality generation (a cost to the operator when it succeeds); 0: never, the "
        "operator re-enables it.",
    )
    local_fallback_models: list[str] = Field(
        default_factory=list,
        description="Models the placeholder engine still serves when channels serve them too: the "
        "last route, tried when every channel fails or is cooling down.",
    )
    frozen_time: float | None = Field(
        default=None, description="Testing and benchmarks only: every clock read returns this."
    )
    create_initial_key: bool = Field(
        default=True, description="On a new database, `serve` creates one API key and prints it."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 (not used: no .env files)
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @model_validator(mode="after")
    def _presigned_urls_need_a_bucket(self) -> Settings:
        if self.s3_presigned_urls and self.blob_store is None:
            raise ValueError("s3_presigned_urls needs blob_store=s3://bucket/prefix")
        if self.s3_presigned_urls and self.url_ttl_s > PRESIGNED_MAX_S:
            raise ValueError(f"presigned URLs live at most {PRESIGNED_MAX_S} s (7 days): lower url_ttl_s")
        return self

    @property
    def shared_state_path(self) -> Path | None:
        """The file in which several worker processes without Redis share their rate limits and
        circuit breakers (imagegate.records.FileRecords); None when they need none."""
        if self.workers > 1 and self.redis_url is None:
            return self.data_dir / "workers.sqlite"
        return None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'imagegate.db').resolve()}"


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by IMAGEGATE_CONFIG (top-level keys = field names)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = os.environ.get("IMAGEGATE_CONFIG")
        self.data: dict[str, Any] = tomllib.loads(Path(path).read_text()) if path else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k in self.settings_cls.model_fields}
