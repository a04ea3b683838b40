"""Service tiers and their limits, as the API reference's ``GET /pricing`` lists them.

``daily_job_limit = -1`` means unlimited. ``price_monthly = None`` means
"on request". These values are the defaults; enforcing them is the quota
layer's job.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tier:
    """One tier: name, monthly price (USD, None = on request), and its limits."""

    name: str
    price_monthly: int | None
    daily_job_limit: int
    max_qubits: int
    max_shots: int


DEFAULT_TIERS: dict[str, Tier] = {
    tier.name: tier
    for tier in (
        Tier("free", 0, 10, 20, 10_000),
        Tier("pro", 49, 100, 50, 100_000),
        Tier("enterprise", None, -1, 100, 1_000_000),
    )
}
