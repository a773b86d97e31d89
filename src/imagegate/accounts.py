"""Key and credit administration shared by the CLI and the /admin HTTP API (no HTTP here)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from imagegate.config import Settings
from imagegate.errors import InvalidValue, NotFound
from imagegate.pricing import micros_to_usd, usd_to_micros
from imagegate.storage import bounds
from imagegate.storage.keys import ApiKey, KeyRepo
from imagegate.storage.ledger import BalanceTooLarge, Ledger
from imagegate.storage.usage import UsageRepo

LIMIT_FIELDS = ("rpm", "rpd", "ipm", "concurrency")


@dataclass(frozen=True, slots=True)
class Accounts:
    settings: Settings
    keys: KeyRepo
    ledger: Ledger
    usage: UsageRepo

    def create_key(
        self, name: str, tier: str = "free", credit_usd: str | Decimal | None = None, **fields: Any
    ) -> tuple[dict[str, Any], str]:
        """A new key with its starting credit (the trial credit unless `credit_usd` is given)."""
        self._check_tier(tier)
        _check_text(name, "name", bounds.KEY_NAME)
        credit = self.settings.trial_credit_usd if credit_usd is None else credit_usd
        key, secret = self.keys.create(
            name, tier, credit_micros=_micros(credit, "credit_usd"), **_clean(fields)
        )
        return self.view(key), secret

    def update_key(self, ident: str, **fields: Any) -> dict[str, Any]:
        key = self.find(ident)
        if "tier" in fields and fields["tier"] is not None:
            self._check_tier(fields["tier"])
        if fields.get("name") is not None:
            _check_text(fields["name"], "name", bounds.KEY_NAME)
        updated = self.keys.update(
            key.id,
            **_clean(fields, keep_none=("expires_at", "allowed_models", *LIMIT_FIELDS, "multiplier_ppm")),
        )
        assert updated is not None
        return self.view(updated)

    def revoke_key(self, ident: str) -> dict[str, Any]:
        self.find(ident)
        key = self.keys.revoke(ident)
        assert key is not None
        return self.view(key)

    def add_credit(self, ident: str, amount_usd: str | Decimal, note: str | None = None) -> dict[str, Any]:
        key = self.find(ident)
        if note is not None and (len(note) > 1000 or not bounds.storable(note)):
            raise InvalidValue("'note' must be a text of at most 1000 characters.", param="note")
        micros = _micros(amount_usd, "amount_usd")
        if micros <= 0:
            raise InvalidValue("amount_usd must be more than zero.", param="amount_usd")
        try:
            self.ledger.top_up(key.id, micros, note)
        except BalanceTooLarge:
            raise InvalidValue(
                f"A key's balance can be at most ${micros_to_usd(bounds.MAX_BALANCE_MICROS):,.0f}; "
                "this top-up would exceed it.",
                param="amount_usd",
            ) from None
        return self.view(self.find(str(key.id)))

    def list_keys(self) -> list[dict[str, Any]]:
        return [self.view(k) for k in self.keys.list()]

    def get_key(self, ident: str) -> dict[str, Any]:
        return self.view(self.find(ident))

    def account(self, key: ApiKey) -> dict[str, Any]:
        """What a key sees of itself at GET /v1/usage."""
        credited, spent = self.ledger.totals(key.id)
        counts = self.usage.account(key.id)
        balance = self.ledger.balance(key.id)
        return {
            "object": "usage",
            "key": key.prefix,
            "tier": key.tier,
            "balance_usd": micros_to_usd(balance),
            "spent_usd": micros_to_usd(spent),
            "credited_usd": micros_to_usd(credited),
            "reserved_usd": micros_to_usd(credited - spent - balance),
            **counts,
        }

    def usage_totals(
        self, key: str | None = None, days: int | None = None, now: float | None = None
    ) -> list[dict[str, Any]]:
        key_id = self.find(key).id if key else None
        rows = self.usage.totals(key_id=key_id, days=days, now=now)
        for row in rows:
            row["cost_usd"] = micros_to_usd(row.pop("cost_micros"))
            row["upstream_cost_usd"] = micros_to_usd(row.pop("upstream_cost_micros"))
        return rows

    def usage_by_channel(self, days: int | None = None, now: float | None = None) -> list[dict[str, Any]]:
        rows = self.usage.by_channel(days=days, now=now)
        for row in rows:
            for name in ("cost", "upstream_cost", "margin"):
                row[f"{name}_usd"] = micros_to_usd(row.pop(f"{name}_micros"))
        return rows

    def usage_by_model(self, days: int | None = None, now: float | None = None) -> list[dict[str, Any]]:
        rows = self.usage.by_model(days=days, now=now)
        for row in rows:
            row["cost_usd"] = micros_to_usd(row.pop("cost_micros"))
            row["upstream_cost_usd"] = micros_to_usd(row.pop("upstream_cost_micros"))
        return rows

    def usage_errors(self, days: int | None = None, now: float | None = None) -> list[dict[str, Any]]:
        return self.usage.errors(days=days, now=now)

    def usage_latency(self, days: int | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """Per UTC day: requests and the 50th, 90th and 99th latency percentiles of the successful
        ones, each the upper bound (ms) of the bucket it falls in (None: above the last bucket)."""
        by_day: dict[str, list[tuple[int | None, int]]] = {}
        for row in self.usage.latency_histogram(days=days, now=now):
            by_day.setdefault(row["day"], []).append((row["le_ms"], row["requests"]))
        out = []
        for day, buckets in by_day.items():
            buckets.sort(key=lambda b: float("inf") if b[0] is None else b[0])
            total = sum(n for _, n in buckets)
            out.append(
                {
                    "day": day,
                    "requests": total,
                    **{f"p{q}_ms": bucket_percentile(buckets, total, q) for q in (50, 90, 99)},
                }
            )
        return out

    def view(self, key: ApiKey) -> dict[str, Any]:
        tier = self.settings.tiers.get(key.tier)
        effective = {
            f: getattr(key, f) if getattr(key, f) is not None else getattr(tier, f, None)
            for f in LIMIT_FIELDS
        }
        multiplier = (
            key.multiplier_ppm
            if key.multiplier_ppm is not None
            else (tier.multiplier_ppm if tier else 1_000_000)
        )
        return {
            "id": key.id,
            "name": key.name,
            "prefix": key.prefix,
            "tier": key.tier,
            "status": "revoked" if key.revoked_at else "active",
            "created_at": int(key.created_at),
            "expires_at": key.expires_at,
            "balance_usd": micros_to_usd(key.balance_micros),
            "limits": effective,
            "overrides": {f: getattr(key, f) for f in LIMIT_FIELDS},
            "multiplier": multiplier / 1_000_000,
            "allowed_models": list(key.allowed_models) if key.allowed_models else None,
        }

    def find(self, ident: str) -> ApiKey:
        """A key by id or displayed prefix; NotFound otherwise."""
        key = self.keys.find(ident)
        if key is None:
            raise NotFound(f"No key '{ident}'.", code="key_not_found")
        return key

    def _check_tier(self, tier: str) -> None:
        if tier not in self.settings.tiers:
            raise InvalidValue(
                f"Unknown tier '{tier}'. Configured tiers: {', '.join(self.settings.tiers)}.", param="tier"
            )
        if len(tier) > bounds.TIER:  # configured, but longer than a key's tier column holds
            raise InvalidValue(
                f"The tier name '{tier}' is longer than {bounds.TIER} characters: rename it "
                "in the configuration to give keys this tier.",
                param="tier",
            )


def bucket_percentile(buckets: list[tuple[int | None, int]], total: int, q: int) -> int | None:
    """The bucket bound below which `q` percent of `total` requests fall (buckets in order)."""
    seen = 0
    for bound, count in buckets:
        seen += count
        if seen * 100 >= total * q:
            return bound
    return None


def _micros(value: str | Decimal | int | float, param: str) -> int:
    try:
        micros = usd_to_micros(value)
    except ValueError as exc:
        raise InvalidValue(f"Invalid '{param}': {exc}.", param=param) from exc
    if micros > bounds.MAX_BALANCE_MICROS:
        raise InvalidValue(
            f"Invalid '{param}': at most ${micros_to_usd(bounds.MAX_BALANCE_MICROS):,.0f}.", param=param
        )
    return micros


def _check_text(value: object, param: str, size: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > size or not bounds.storable(value):
        raise InvalidValue(f"'{param}' must be a non-empty text of at most {size} characters.", param=param)


def _check_int(value: object, param: str, lo: int = 1, hi: int = bounds.INT32_MAX) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidValue(f"'{param}' must be a whole number from {lo} to {hi}.", param=param)


def _clean(fields: dict[str, Any], keep_none: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {k: v for k, v in fields.items() if v is not None or k in keep_none}
    if "multiplier" in out:
        multiplier = out.pop("multiplier")
        out["multiplier_ppm"] = None if multiplier is None else _ppm(multiplier)
    for name in LIMIT_FIELDS:
        _check_int(out.get(name), name)
    _check_int(out.get("multiplier_ppm"), "multiplier", 0)
    models = out.get("allowed_models")
    if models is not None:
        if not isinstance(models, list | tuple):
            raise InvalidValue("'allowed_models' must be a list of model names.", param="allowed_models")
        for model in models:
            _check_text(model, "allowed_models", bounds.MODEL_NAME)
    expires = out.get("expires_at")
    if expires is not None and not (isinstance(expires, int | float) and 0 <= expires < 1e11):
        raise InvalidValue("'expires_at' must be a Unix time.", param="expires_at")
    return out


def _ppm(multiplier: str | float | Decimal) -> int:
    try:
        value = Decimal(str(multiplier)) * 1_000_000
        ok = value.is_finite() and 0 <= value <= bounds.INT32_MAX and value == value.to_integral_value()
    except ArithmeticError:  # decimal.InvalidOperation: not a number
        ok = False
    if not ok:
        raise InvalidValue(
            f"multiplier must be from 0 to {bounds.INT32_MAX // 1_000_000} with at most 6 decimals.",
            param="multiplier",
        )
    return int(value)
