"""Cluster profiles: a TOML file per site that says how jobs are asked for.

A profile names the sbatch template (in ``slurm_templates/``) and gives the
Slurm options (partition, account, QOS, time limit, CPUs, memory, gres), the
interpreter that runs the runner, and the simulator settings. Profiles live
in ``deploy/profiles/<name>.toml``; a path to any TOML file works too.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES_DIR = REPO_ROOT / "deploy" / "profiles"
TEMPLATES_DIR = REPO_ROOT / "slurm_templates"

# Slurm names (partition, account, QOS) and gres specs: what sites use, nothing
# that could end an #SBATCH line or start a new option.
_SLURM_NAME = re.compile(r"^[A-Za-z0-9_.-]{0,64}$")
_GRES = re.compile(r"^[A-Za-z0-9_.:,-]{0,128}$")
# [days-]hours:minutes:seconds, minutes, minutes:seconds... (man sbatch, --time).
_TIME_LIMIT = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")
_MEMORY = re.compile(r"^\d+[KMGT]?$")


class ProfileError(ValueError):
    """A profile file is missing or holds a value Slurm would not accept."""


@dataclass(frozen=True)
class SlurmOptions:
    """The ``#SBATCH`` options of a profile. Empty strings mean "leave unset"."""

    partition: str = "debug"
    account: str = ""
    qos: str = ""
    time_limit: str = "00:10:00"
    cpus_per_task: int = 1
    mem: str = "2G"
    gres: str = ""


@dataclass(frozen=True)
class SimulatorOptions:
    """How the runner simulates: Aer ``method``, ``device`` (CPU/GPU),
    ``custatevec`` (NVIDIA only) and ``precision`` (double/single)."""

    method: str = "automatic"
    device: str = "CPU"
    custatevec: bool = False
    precision: str = "double"


@dataclass(frozen=True)
class ClusterProfile:
    """One site's way of running a QCOS job; see ``deploy/profiles/dev.toml``."""

    name: str
    template: str
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    simulator: SimulatorOptions = field(default_factory=SimulatorOptions)
    runner_python: str = ""

    @property
    def python(self) -> str:
        """The runner's interpreter: the profile's, or this process's own."""
        return self.runner_python or sys.executable


def load_profile(name_or_path: str, profiles_dir: Path = PROFILES_DIR) -> ClusterProfile:
    """Load a profile by name (``deploy/profiles/<name>.toml``) or by file path.

    Raises :class:`ProfileError` for a missing file or an invalid value.
    """
    candidate = Path(name_or_path)
    if candidate.suffix != ".toml":
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name_or_path):
            raise ProfileError(f"invalid profile name {name_or_path!r}")
        candidate = profiles_dir / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(candidate.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"cluster profile not found: {candidate}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"cluster profile {candidate} is not valid TOML: {exc}") from None
    try:
        profile = ClusterProfile(
            name=data["name"],
            template=data["template"],
            slurm=SlurmOptions(**data.get("slurm", {})),
            simulator=SimulatorOptions(**data.get("simulator", {})),
            runner_python=data.get("runner", {}).get("python", ""),
        )
    except (KeyError, TypeError) as exc:
        raise ProfileError(f"cluster profile {candidate}: {exc}") from None
    validate_profile(profile)
    return profile


def validate_profile(profile: ClusterProfile) -> None:
    """Raise :class:`ProfileError` unless every Slurm value is well formed."""
    s = profile.slurm
    checks = [
        ("partition", s.partition, _SLURM_NAME),
        ("account", s.account, _SLURM_NAME),
        ("qos", s.qos, _SLURM_NAME),
        ("gres", s.gres, _GRES),
        ("time_limit", s.time_limit, _TIME_LIMIT),
        ("mem", s.mem, _MEMORY),
    ]
    for key, value, pattern in checks:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ProfileError(f"profile {profile.name}: invalid slurm.{key} {value!r}")
    if not isinstance(s.cpus_per_task, int) or not 1 <= s.cpus_per_task <= 1024:
        raise ProfileError(f"profile {profile.name}: slurm.cpus_per_task must be 1..1024")
    if profile.simulator.device not in ("CPU", "GPU"):
        raise ProfileError(f"profile {profile.name}: simulator.device must be CPU or GPU")
    if profile.simulator.precision not in ("double", "single"):
        raise ProfileError(f"profile {profile.name}: simulator.precision must be double or single")
    if not (TEMPLATES_DIR / profile.template).is_file():
        raise ProfileError(f"profile {profile.name}: template {profile.template} not in {TEMPLATES_DIR}")
