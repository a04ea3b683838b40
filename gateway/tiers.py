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
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError, ValidationInfo

from hpc_jobs.accounting import AccountingError, TierScheduling, check_against_profile

DEFAULT_TIERS_FILE = Path(__file__).resolve().parents[1] / "deploy" / "tiers.toml"
UNLIMITED = -1


class TierConfigError(ValueError):
    """The tiers file is missing, malformed or holds an impossible value."""


def _positive_or_unlimited(value: int) -> int:
    if value < UNLIMITED or value == 0:
        raise ValueError("must be positive or -1")
    return value


#: A limit: a positive whole number, or -1 for none.
Limit = Annotated[int, AfterValidator(_positive_or_unlimited)]


def _scheduling(value: object, info: ValidationInfo) -> TierScheduling:
    if isinstance(value, TierScheduling):
        return value
    try:
        return TierScheduling.from_mapping(value, where=f"tier {info.data.get('name', '?')}")
    except AccountingError as exc:
        raise ValueError(str(exc)) from None


#: A tier's ``[tier.slurm]`` table, checked by :meth:`TierScheduling.from_mapping`.
Scheduling = Annotated[TierScheduling, PlainValidator(_scheduling)]


class Tier(BaseModel):
    """One tier. Limits are per job (qubits, shots), per UTC day (jobs) and
    per API key (requests per minute and per day); ``-1`` is unlimited.
    ``slurm``: the tier's own account, QOS, partition preference and nice
    (a ``[tier.slurm]`` table, see :class:`hpc_jobs.accounting.TierScheduling`).
    Whole numbers must be TOML integers; unknown keys are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=32)
    price_monthly: int | None = Field(None, ge=0)
    daily_job_limit: Limit
    max_qubits: int = Field(ge=1)
    max_shots: int = Field(ge=1)
    requests_per_minute: Limit = UNLIMITED
    requests_per_day: Limit = UNLIMITED
    slurm: Scheduling = TierScheduling()

    def pricing(self) -> dict:
        """The tier as ``GET /pricing`` lists it."""
        return self.model_dump(include={"name", "price_monthly", "daily_job_limit", "max_qubits", "max_shots"})


class _TiersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: list[Tier] = Field(min_length=1)


def load_tiers(path: Path = DEFAULT_TIERS_FILE) -> dict[str, Tier]:
    """Tiers by name, in file order. Raises :class:`TierConfigError` naming the
    tier and key at fault."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TierConfigError(f"tiers file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TierConfigError(f"tiers file {path} is not valid TOML: {exc}") from None
    try:
        tiers = _TiersFile.model_validate(data).tier
    except ValidationError as exc:
        raise TierConfigError(f"tiers file {path}: " + _describe(exc, data)) from None
    by_name: dict[str, Tier] = {}
    for tier in tiers:
        if tier.name in by_name:
            raise TierConfigError(f"tiers file {path}: tier {tier.name} is defined twice")
        by_name[tier.name] = tier
    return by_name


def _describe(exc: ValidationError, data: dict) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = list(error["loc"])
        where = ".".join(str(part) for part in loc)
        if len(loc) >= 2 and loc[0] == "tier" and isinstance(loc[1], int):
            entry = data["tier"][loc[1]]
            name = entry.get("name", f"#{loc[1] + 1}") if isinstance(entry, dict) else f"#{loc[1] + 1}"
            where = f"tier {name}" + "".join(f".{part}" for part in loc[2:])
        elif loc == ["tier"] and error["type"] == "missing":
            problems.append("defines no [[tier]]")
            continue
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def check_tiers_against_profile(tiers: dict[str, Tier], profile) -> None:
    """Raise :class:`TierConfigError` when a tier's Slurm settings do not fit
    the cluster profile (unknown partition, account the site refuses)."""
    for tier in tiers.values():
        try:
            check_against_profile(tier.slurm, profile, where=f"tier {tier.name}")
        except AccountingError as exc:
            raise TierConfigError(str(exc)) from None
