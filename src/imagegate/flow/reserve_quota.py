"""Stage: hold the request's maximum possible cost before any engine runs.

Contract: `quote(...)` prices a job in micro-dollars (n images at its size and quality,
streamed partial images, input images, prompt tokens) for the key (its multiplier applied);
`reserve(credits, key, micros, request_id, timeout_s)` holds that much of the balance or
raises InsufficientQuota (429 insufficient_quota) before anything is generated.
"""

from __future__ import annotations

from imagegate.domain import ImageJob
from imagegate.errors import InsufficientQuota
from imagegate.flow.ports import Credits
from imagegate.images.tokens import Usage
from imagegate.pricing import ModelPrice, base_cost, charge, micros_to_usd
from imagegate.storage.ledger import InsufficientBalance, Reservation


def quote(
    price: ModelPrice, usage: Usage, job: ImageJob, images: int, multiplier_ppm: int
) -> tuple[int, int]:
    """(base cost, the key's charge) in micro-dollars for `images` images with `usage`."""
    base = base_cost(price, usage, images=images, quality=job.quality, size=job.size)
    return base, charge(base, multiplier_ppm)


async def reserve(
    credits: Credits, key_id: int, micros: int, request_id: str, timeout_s: float
) -> Reservation:
    try:
        return await credits.reserve(key_id, micros, request_id, timeout_s)
    except InsufficientBalance as exc:
        raise InsufficientQuota(
            "You exceeded your current quota, please check your plan and billing details: this "
            f"request needs up to ${micros_to_usd(exc.needed_micros):.6f} and the key's balance is "
            f"${micros_to_usd(exc.balance_micros):.6f}."
        ) from exc
