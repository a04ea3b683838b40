"""Service tiers: prices, quotas and rate limits, read from a TOML file.

The file (``deploy/tiers.toml`` unless ``QCOS_TIERS_FILE`` names another)
holds the API reference's tiers (free, pro, enterprise) and their limits, so
a site changes prices and limits without code changes. ``-1`` means
unlimited; a missing ``price_monthly`` means "on request" (``null``).

A tier may carry its own Slurm settings in a ``[tier.slurm]`` table
(``account``, ``qos``, ``partitions``, ``nice``; all optional, see
:class:`hpc_jobs.accounting.TierScheduling`), so paid work can run under
another account or QOS, and on preferred partitions, than free work.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hpc_jobs.accounting import AccountingError, TierScheduling, check_against_profile

DEFAULT_TIERS_FILE = Path(__file__).resolve().parents[1] / "deploy" / "tiers.toml"
UNLIMITED = -1


class TierConfigError(ValueError):
    """The tiers file is missing, malformed or holds an impossible value."""


@dataclass(frozen=True)
class Tier:
    """One tier. Limits are per job (qubits, shots), per UTC day (jobs) and
    per API key (requests per minute and per day); ``-1`` is unlimited.
    ``slurm``: the tier's own account, QOS, partition preference and nice."""

    name: str
    price_monthly: int | None
    daily_job_limit: int
    max_qubits: int
    max_shots: int
    requests_per_minute: int
    requests_per_day: int
    slurm: TierScheduling = field(default_factory=TierScheduling)

    def pricing(self) -> dict:
        """The tier as ``GET /pricing`` lists it."""
        return {
            "name": self.name,
            "price_monthly": self.price_monthly,
            "daily_job_limit": self.daily_job_limit,
            "max_qubits": self.max_qubits,
            "max_shots": self.max_shots,
        }


def load_tiers(path: Path = DEFAULT_TIERS_FILE) -> dict[str, Tier]:
    """Tiers by name, in file order. Raises :class:`TierConfigError`."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TierConfigError(f"tiers file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TierConfigError(f"tiers file {path} is not valid TOML: {exc}") from None
    tiers: dict[str, Tier] = {}
    for entry in data.get("tier", []):
        try:
            tier = Tier(
                name=str(entry["name"]),
                price_monthly=entry.get("price_monthly"),
                daily_job_limit=int(entry["daily_job_limit"]),
                max_qubits=int(entry["max_qubits"]),
                max_shots=int(entry["max_shots"]),
                requests_per_minute=int(entry.get("requests_per_minute", UNLIMITED)),
                requests_per_day=int(entry.get("requests_per_day", UNLIMITED)),
                slurm=TierScheduling.from_mapping(entry.get("slurm", {}), where=f"tier {entry.get('name')}"),
            )
        except AccountingError as exc:
            raise TierConfigError(f"tiers file {path}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise TierConfigError(f"tiers file {path}: bad tier entry {entry!r}: {exc}") from None
        for field_name in ("daily_job_limit", "requests_per_minute", "requests_per_day"):
            value = getattr(tier, field_name)
            if value < UNLIMITED or value == 0:
                raise TierConfigError(f"tier {tier.name}: {field_name} must be positive or -1")
        if tier.max_qubits < 1 or tier.max_shots < 1:
            raise TierConfigError(f"tier {tier.name}: max_qubits and max_shots must be at least 1")
        if tier.name in tiers:
            raise TierConfigError(f"tier {tier.name} is defined twice")
        tiers[tier.name] = tier
    if not tiers:
        raise TierConfigError(f"tiers file {path} defines no [[tier]]")
    return tiers


def check_tiers_against_profile(tiers: dict[str, Tier], profile) -> None:
    """Raise :class:`TierConfigError` when a tier's Slurm settings do not fit
    the cluster profile (unknown partition, account the site refuses)."""
    for tier in tiers.values():
        try:
            check_against_profile(tier.slurm, profile, where=f"tier {tier.name}")
        except AccountingError as exc:
            raise TierConfigError(str(exc)) from None
