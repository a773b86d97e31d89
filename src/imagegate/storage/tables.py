"""Table definitions (SQLAlchemy Core). Alembic migrations in migrations/versions mirror them.

Money is BigInteger micro-dollars. Times are float seconds since the epoch (from the Clock).
The sizes of the columns a client or an admin fills come from storage/bounds.py, which every
entry point checks against.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from imagegate.storage import bounds

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(bounds.KEY_NAME), nullable=False),
    Column("prefix", String(32), nullable=False),  # shown in listings; never enough to use
    Column("secret_hash", String(64), nullable=False, unique=True),  # sha256 hex of the secret
    Column("tier", String(bounds.TIER), nullable=False, server_default="free"),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("expires_at", Float, nullable=True),
    Column("balance_micros", BigInteger, nullable=False, server_default="0"),
    # Per-key overrides of the tier's numbers (NULL = the tier's).
    Column("rpm", Integer, nullable=True),
    Column("rpd", Integer, nullable=True),
    Column("ipm", Integer, nullable=True),
    Column("concurrency", Integer, nullable=True),
    Column("multiplier_ppm", Integer, nullable=True),
    Column("allowed_models", Text, nullable=True),  # JSON list; NULL = every model
    CheckConstraint("balance_micros >= 0", name="ck_api_keys_balance_nonnegative"),
)

# Append-only: every balance equals the sum of its key's rows.
ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_id", Integer, ForeignKey("api_keys.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # topup | reserve | settle | release
    Column("amount_micros", BigInteger, nullable=False),  # signed
    Column("reservation_id", String(36), nullable=True),
    Column("note", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)

reservations = Table(
    "reservations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id"), nullable=False),
    Column("request_id", String(bounds.REQUEST_ID), nullable=True),
    Column("amount_micros", BigInteger, nullable=False),
    Column("charged_micros", BigInteger, nullable=True),
    Column("status", String(16), nullable=False),  # held | settled | released
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_reservations_status_expires", "status", "expires_at"),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(bounds.REQUEST_ID), nullable=False),
    Column("key_id", Integer, ForeignKey("api_keys.id"), nullable=False, index=True),
    Column("day", String(10), nullable=False, index=True),  # UTC YYYY-MM-DD
    Column("created_at", Float, nullable=False),
    Column("endpoint", String(32), nullable=False),  # generations | edits
    Column("model", String(bounds.MODEL_NAME), nullable=True),
    Column("engine", String(bounds.ENGINE_NAME), nullable=True),  # "upstream:<channel name>"
    Column("params", Text, nullable=True),  # JSON of the resolved parameters
    Column("images", Integer, nullable=False, server_default="0"),
    Column("text_in", Integer, nullable=False, server_default="0"),
    Column("image_in", Integer, nullable=False, server_default="0"),
    Column("image_out", Integer, nullable=False, server_default="0"),
    Column("cost_micros", BigInteger, nullable=False, server_default="0"),
    Column("latency_ms", Integer, nullable=False, server_default="0"),
    Column("status", Integer, nullable=False),
    Column("error_code", String(bounds.ERROR_CODE), nullable=True),
    # Relayed requests: the channel that answered, what the operator paid it, and attempts;
    # of the failed attempts, those the provider may have charged for (sent, then timed out).
    Column("channel", String(bounds.CHANNEL_NAME), nullable=True),
    Column("upstream_cost_micros", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("maybe_billed", Integer, nullable=False, server_default="0"),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("key_id", Integer, ForeignKey("api_keys.id"), primary_key=True),
    Column("idem_key", String(bounds.IDEMPOTENCY_KEY), primary_key=True),
    Column("body_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending | done
    Column("response", Text, nullable=True),  # JSON with image bytes referenced by blob name
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Upstream providers (engines/providers.py). The API key is sealed (storage/secretbox.py).
channels = Table(
    "channels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(bounds.CHANNEL_NAME), nullable=False, unique=True),
    Column("base_url", String(bounds.BASE_URL), nullable=False),
    Column("api_key_sealed", Text, nullable=False),
    Column("models", Text, nullable=False),  # JSON list of client-facing model names
    Column("model_map", Text, nullable=True),  # JSON object: client name -> upstream name
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("weight", Integer, nullable=False, server_default="1"),
    Column("timeout_s", Float, nullable=False, server_default="120"),
    Column("prices", Text, nullable=True),  # JSON ModelPrice: what the operator pays
    Column("enabled", Integer, nullable=False, server_default="1"),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # When a replica last spent a real request probing an out-of-balance account (channels.py).
    Column("balance_probed_at", Float, nullable=True),
    Column("provider", String(bounds.PROVIDER_KIND), nullable=False, server_default="openai"),
    Column("options", Text, nullable=True),  # JSON object: the provider's settings
    Column("capabilities", Text, nullable=True),  # JSON object: the operator's overrides
)

images = Table(
    "images",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("ext", String(8), nullable=False),
    Column("media_type", String(32), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

# Asynchronous image jobs (Prefer: respond-async): any replica claims a queued job with a
# conditional UPDATE and holds it by a lease it renews; the job's reservation is held from the
# submission to the end. Images live in the blob store; `result` names them (never their bytes).
image_jobs = Table(
    "image_jobs",
    metadata,
    Column("id", String(40), primary_key=True),  # imgjob_<32 hex>
    Column("key_id", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # queued | in_progress | completed | failed | cancelled
    Column("kind", String(16), nullable=False),  # generation | edit
    Column("model", String(bounds.MODEL_NAME), nullable=False),
    Column("request_id", String(bounds.REQUEST_ID), nullable=False),
    Column("base_url", String(bounds.BASE_URL), nullable=False),  # for the result's signed URLs
    Column("params", Text, nullable=False),  # JSON: the request's parameters
    Column("uploads", Text, nullable=True),  # JSON: [{field, filename, content_type, blob}]
    Column("multipart", Integer, nullable=False, server_default="0"),
    Column("reservation_id", String(64), nullable=False),
    Column("reserved_micros", BigInteger, nullable=False),
    Column("idempotency_key", String(bounds.IDEMPOTENCY_KEY), nullable=True),
    Column("webhook_url", String(bounds.WEBHOOK_URL), nullable=True),
    Column("result", Text, nullable=True),  # JSON: the ImagesResponse with images by blob name
    Column("error", Text, nullable=True),  # JSON: OpenAI's error object
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("worker", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("cancel_requested", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("webhook_status", String(16), nullable=True),  # pending | delivered | failed
    Column("webhook_attempts", Integer, nullable=False, server_default="0"),
    Column("webhook_next_at", Float, nullable=True),
    Column("images_done", Integer, nullable=False, server_default="0"),  # of the run under way
    UniqueConstraint("key_id", "idempotency_key", name="uq_image_jobs_key_idempotency"),
)
Index("ix_image_jobs_status_created", image_jobs.c.status, image_jobs.c.created_at)
Index("ix_image_jobs_key_created", image_jobs.c.key_id, image_jobs.c.created_at)

# Each key's webhook signing secret (Standard Webhooks "whsec_..."), sealed like channel keys.
webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("key_id", Integer, primary_key=True),
    Column("secret_sealed", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Every request that delivered images: what was asked (the prompt unless the operator keeps none),
# by which key, model, engine and channel, at what cost, from which inputs to which outputs
# (content hashes; the blobs may expire sooner). Kept `history_retention_s`.
image_history = Table(
    "image_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(bounds.REQUEST_ID), nullable=False),
    Column("key_id", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("model", String(bounds.MODEL_NAME), nullable=True),
    Column("engine", String(bounds.ENGINE_NAME), nullable=True),
    Column("channel", String(bounds.CHANNEL_NAME), nullable=True),
    Column("prompt", Text, nullable=True),
    Column("params", Text, nullable=False),  # JSON
    Column("inputs", Text, nullable=False),  # JSON: sha256 of each input image (and the mask)
    Column("outputs", Text, nullable=False),  # JSON: [{"sha256", "ext"}]
    Column("cost_micros", BigInteger, nullable=False),
)
Index("ix_image_history_key_id", image_history.c.key_id, image_history.c.id)
Index("ix_image_history_expires", image_history.c.expires_at)

# Signed-in browser sessions of the web console (/console), shared by every replica. Only a
# SHA-256 of the session id (the cookie's value) is stored; `key_id` is None for the operator,
# whose session holds a SHA-256 of the admin key it signed in with (a changed key ends it).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("role", String(16), nullable=False),  # "operator" or "key"
    Column("key_id", Integer, nullable=True),
    Column("admin_key_hash", String(64), nullable=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_console_sessions_expires", console_sessions.c.expires_at)
