"""Cluster profiles: a TOML file per site that says how jobs are asked for.

A profile names the sbatch template (in ``slurm_templates/``) and describes
the site: the Slurm options every job gets (account, QOS, defaults), the
compute node (cores, memory, GPUs and their memory), the partitions jobs may
go to with their limits, the container that runs the simulation, extra
environment lines, and the simulator settings. :mod:`hpc_jobs.sizing` turns
a circuit plus a profile into the resources of one job; the template turns
those into ``#SBATCH`` lines.

Profiles live in ``deploy/profiles/<name>.toml``; a path to any TOML file
works too. ``deploy/profiles/dev.toml`` documents every key.

Every value that can reach an ``#SBATCH`` line or a shell line is checked
here against a pattern, so a profile cannot inject options or commands.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
# Paths that appear on shell lines (container image, bind mounts): plain
# characters only, and "{account}" before expansion.
_PATH = re.compile(r"^/[A-Za-z0-9/_.+-]*$")
_CONTAINER_FLAG = re.compile(r"^--[a-z][a-z-]*$")
_MODULE = re.compile(r"^[A-Za-z0-9_.+/-]{1,128}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_GPU_TYPE = re.compile(r"^[A-Za-z0-9_.-]{0,32}$")
_PROGRAM = re.compile(r"^[A-Za-z0-9_./+-]{1,256}$")

_BINARY_UNITS = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
CONTAINER_RUNTIMES = ("", "singularity", "apptainer")


class ProfileError(ValueError):
    """A profile file is missing or holds a value Slurm would not accept."""


@dataclass(frozen=True)
class SlurmOptions:
    """The ``#SBATCH`` options of a profile. Empty strings mean "leave unset".

    ``partition``, ``time_limit``, ``cpus_per_task``, ``mem``: what a job
    gets when it is rendered without sized resources; ``time_limit`` is
    also the shortest limit sizing asks for. ``account_pattern``: a regular
    expression the account must match in full (``"project_[0-9]+"`` on
    LUMI, where every job is billed to a project); empty: any account,
    including none.
    """

    partition: str = "debug"
    account: str = ""
    account_pattern: str = ""
    qos: str = ""
    time_limit: str = "00:10:00"
    cpus_per_task: int = 1
    mem: str = "2G"
    gres: str = ""


@dataclass(frozen=True)
class SimulatorOptions:
    """How the runner simulates: Aer ``method``, ``device`` (CPU/GPU),
    ``custatevec`` (NVIDIA only) and ``precision`` (double/single).

    ``memory_headroom``: factor on the state vector's size that sizing
    reserves (Aer's chunk-swap buffers on several GPUs, fused-gate matrices,
    the Python process); 1.25 means 25 % more than 16·2ⁿ bytes.
    """

    method: str = "automatic"
    device: str = "CPU"
    custatevec: bool = False
    precision: str = "double"
    memory_headroom: float = 1.25


@dataclass(frozen=True)
class NodeSpec:
    """One compute node of the profile's partitions, as jobs may use it.

    ``cores``: cores a job may use (LUMI-G: 56 of 64). ``memory``: host
    memory a job may use, Slurm syntax (``"480G"``). ``gpus``: GPUs per node
    as Slurm counts them (LUMI-G: 8 GCDs); 0 for CPU nodes. ``gpu_memory``:
    memory of one GPU (``"64G"``). ``gpu_type``: typed GRES name
    (``--gres=gpu:<type>:N``), empty for untyped. ``cpus_per_gpu``: cores
    to give each GPU's share of the job.
    """

    cores: int = 1
    memory: str = "2G"
    gpus: int = 0
    gpu_memory: str = "0"
    gpu_type: str = ""
    cpus_per_gpu: int = 1


@dataclass(frozen=True)
class Partition:
    """A partition jobs may be sent to: ``max_nodes`` per job and
    ``max_time`` (Slurm syntax). ``auto``: whether sizing may choose it
    (false for development partitions such as LUMI's ``dev-g``)."""

    name: str
    max_nodes: int = 1
    max_time: str = "01:00:00"
    auto: bool = True


@dataclass(frozen=True)
class ContainerOptions:
    """The container that runs ``python -m hpc_jobs.runner``.

    ``runtime``: ``"singularity"``, ``"apptainer"`` or ``""`` (no container:
    the profile's ``runner.python`` runs directly). ``image``: path of the
    SIF file. ``binds``: host paths bound at the same path inside. Both may
    contain ``{account}``, replaced by ``slurm.account``. ``flags``: extra
    ``exec`` flags (``--nv`` for NVIDIA). ``python``: interpreter inside.
    """

    runtime: str = ""
    image: str = ""
    binds: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    python: str = "python3"


@dataclass(frozen=True)
class EnvironmentOptions:
    """Lines run before the simulation: ``module load`` of ``modules`` in
    order, then ``export NAME=value`` of ``variables`` (values are quoted)."""

    modules: tuple[str, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ClusterProfile:
    """One site's way of running a QCOS job; see ``deploy/profiles/dev.toml``."""

    name: str
    template: str
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    simulator: SimulatorOptions = field(default_factory=SimulatorOptions)
    runner_python: str = ""
    node: NodeSpec = field(default_factory=NodeSpec)
    partitions: tuple[Partition, ...] = ()
    container: ContainerOptions = field(default_factory=ContainerOptions)
    environment: EnvironmentOptions = field(default_factory=EnvironmentOptions)

    @property
    def python(self) -> str:
        """The runner's interpreter: the profile's, or this process's own."""
        return self.runner_python or sys.executable

    @property
    def container_image(self) -> str:
        """``container.image`` with ``{account}`` replaced."""
        return self.container.image.replace("{account}", self.slurm.account)

    @property
    def container_binds(self) -> tuple[str, ...]:
        """``container.binds`` with ``{account}`` replaced."""
        return tuple(path.replace("{account}", self.slurm.account) for path in self.container.binds)

    def partition(self, name: str) -> Partition:
        """The partition called ``name``; ``KeyError`` if the profile has none."""
        for partition in self.partitions:
            if partition.name == name:
                return partition
        raise KeyError(name)


def parse_memory(text: str) -> int:
    """Bytes of a Slurm memory size (``"64G"``; no unit means MiB, as ``--mem``
    reads it; K/M/G/T are powers of 1024). Raises ``ValueError``."""
    match = re.fullmatch(r"(\d+)([KMGT]?)", text.strip())
    if not match:
        raise ValueError(f"not a Slurm memory size: {text!r}")
    return int(match[1]) * _BINARY_UNITS[match[2]]


def parse_time_limit(text: str) -> int:
    """Seconds of a Slurm time limit (``"3-00:00:00"``, ``"30"`` = 30 min,
    ``"10:00"`` = 10 min, ``"01:00:00"``), as ``man sbatch`` (--time) reads
    it. Raises ``ValueError``."""
    text = text.strip()
    if not _TIME_LIMIT.fullmatch(text):
        raise ValueError(f"not a Slurm time limit: {text!r}")
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
        parts = [int(p) for p in text.split(":")] + [0, 0]
        hours, minutes, seconds = parts[:3]
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, (minutes, seconds) = 0, parts
        else:
            hours, minutes, seconds = parts
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _build(data: dict[str, Any]) -> ClusterProfile:
    slurm = SlurmOptions(**data.get("slurm", {}))
    partitions = tuple(Partition(**entry) for entry in data.get("partitions", ()))
    if not partitions:
        # A profile without a partitions table (older files): the default
        # partition, one node, its default time limit.
        partitions = (Partition(name=slurm.partition, max_nodes=1, max_time=slurm.time_limit),)
    container = dict(data.get("container", {}))
    for key in ("binds", "flags"):
        if key in container:
            container[key] = tuple(container[key])
    environment = dict(data.get("environment", {}))
    environment["modules"] = tuple(environment.get("modules", ()))
    environment["variables"] = tuple((str(k), str(v)) for k, v in dict(environment.get("variables", {})).items())
    return ClusterProfile(
        name=data["name"],
        template=data["template"],
        slurm=slurm,
        simulator=SimulatorOptions(**data.get("simulator", {})),
        runner_python=data.get("runner", {}).get("python", ""),
        node=NodeSpec(**data.get("node", {})),
        partitions=partitions,
        container=ContainerOptions(**container),
        environment=EnvironmentOptions(**environment),
    )


def load_profile(
    name_or_path: str,
    profiles_dir: Path = PROFILES_DIR,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> ClusterProfile:
    """Load a profile by name (``deploy/profiles/<name>.toml``) or by file path.

    ``overrides``: tables merged over the file's before validation, e.g.
    ``{"slurm": {"account": "project_465000001"}}`` (how a deployment sets
    its own account without editing the shipped file).

    Raises :class:`ProfileError` for a missing file or an invalid value,
    including a missing or malformed account where ``slurm.account_pattern``
    asks for one.
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
    if overrides:
        data = _merge(data, overrides)
    try:
        profile = _build(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProfileError(f"cluster profile {candidate}: {exc}") from None
    validate_profile(profile)
    return profile


def check_account(profile: ClusterProfile) -> None:
    """Raise :class:`ProfileError` when the profile needs an account
    (``slurm.account_pattern``) and ``slurm.account`` does not match it."""
    pattern = profile.slurm.account_pattern
    if pattern and not re.fullmatch(pattern, profile.slurm.account):
        raise ProfileError(
            f"profile {profile.name}: slurm.account {profile.slurm.account!r} is not a valid account; "
            f"this site bills every job to an account matching {pattern!r} (e.g. --account=project_<id> on LUMI). "
            f"Set slurm.account in the profile."
        )


def validate_profile(profile: ClusterProfile) -> None:
    """Raise :class:`ProfileError` unless every Slurm and shell value is well formed."""
    name = profile.name
    s = profile.slurm
    checks = [
        ("slurm.partition", s.partition, _SLURM_NAME),
        ("slurm.account", s.account, _SLURM_NAME),
        ("slurm.qos", s.qos, _SLURM_NAME),
        ("slurm.gres", s.gres, _GRES),
        ("slurm.time_limit", s.time_limit, _TIME_LIMIT),
        ("slurm.mem", s.mem, _MEMORY),
        ("node.memory", profile.node.memory, _MEMORY),
        ("node.gpu_memory", profile.node.gpu_memory, _MEMORY),
        ("node.gpu_type", profile.node.gpu_type, _GPU_TYPE),
    ]
    for partition in profile.partitions:
        checks.append(("partitions.name", partition.name, _SLURM_NAME))
        checks.append(("partitions.max_time", partition.max_time, _TIME_LIMIT))
    for key, value, pattern in checks:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ProfileError(f"profile {name}: invalid {key} {value!r}")
    if not isinstance(s.account_pattern, str):
        raise ProfileError(f"profile {name}: slurm.account_pattern must be a string")
    try:
        re.compile(s.account_pattern)
    except re.error as exc:
        raise ProfileError(f"profile {name}: slurm.account_pattern is not a regular expression: {exc}") from None
    check_account(profile)

    counts = [
        ("slurm.cpus_per_task", s.cpus_per_task, 1),
        ("node.cores", profile.node.cores, 1),
        ("node.gpus", profile.node.gpus, 0),
        ("node.cpus_per_gpu", profile.node.cpus_per_gpu, 1),
    ] + [("partitions.max_nodes", p.max_nodes, 1) for p in profile.partitions]
    for key, value, low in counts:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1_000_000:
            raise ProfileError(f"profile {name}: {key} must be an integer from {low}, not {value!r}")
    if s.cpus_per_task > 1024:
        raise ProfileError(f"profile {name}: slurm.cpus_per_task must be 1..1024")
    if profile.node.gpus and parse_memory(profile.node.gpu_memory) <= 0:
        raise ProfileError(f"profile {name}: node.gpu_memory is required when node.gpus > 0")
    if len({p.name for p in profile.partitions}) != len(profile.partitions):
        raise ProfileError(f"profile {name}: partition names must be unique")
    if not any(p.auto for p in profile.partitions):
        raise ProfileError(f"profile {name}: at least one partition must have auto = true")

    sim = profile.simulator
    if sim.device not in ("CPU", "GPU"):
        raise ProfileError(f"profile {name}: simulator.device must be CPU or GPU")
    if sim.precision not in ("double", "single"):
        raise ProfileError(f"profile {name}: simulator.precision must be double or single")
    if not isinstance(sim.method, str) or not re.fullmatch(r"[a-z_]{1,64}", sim.method):
        raise ProfileError(f"profile {name}: invalid simulator.method {sim.method!r}")
    if isinstance(sim.memory_headroom, bool) or not isinstance(sim.memory_headroom, (int, float)) \
            or not 1.0 <= sim.memory_headroom <= 16.0:
        raise ProfileError(f"profile {name}: simulator.memory_headroom must be a number from 1 to 16")

    c = profile.container
    if c.runtime not in CONTAINER_RUNTIMES:
        raise ProfileError(f"profile {name}: container.runtime must be one of {CONTAINER_RUNTIMES}")
    if c.runtime:
        paths = [("container.image", profile.container_image)] + [("container.binds", b) for b in profile.container_binds]
        for key, value in paths:
            if not _PATH.fullmatch(value) or ".." in value.split("/"):
                raise ProfileError(f"profile {name}: invalid {key} {value!r} (absolute path of plain characters)")
        for flag in c.flags:
            if not _CONTAINER_FLAG.fullmatch(flag):
                raise ProfileError(f"profile {name}: invalid container.flags entry {flag!r}")
        if not _PROGRAM.fullmatch(c.python):
            raise ProfileError(f"profile {name}: invalid container.python {c.python!r}")
    for module in profile.environment.modules:
        if not _MODULE.fullmatch(module):
            raise ProfileError(f"profile {name}: invalid environment.modules entry {module!r}")
    for var, value in profile.environment.variables:
        if not _ENV_NAME.fullmatch(var) or "\n" in value or "\0" in value:
            raise ProfileError(f"profile {name}: invalid environment.variables entry {var!r}")
    if not (TEMPLATES_DIR / profile.template).is_file():
        raise ProfileError(f"profile {name}: template {profile.template} not in {TEMPLATES_DIR}")


def dry_run_variant(profile: ClusterProfile, target: ClusterProfile) -> ClusterProfile:
    """``profile`` with ``target``'s site-only settings, to dry-run its template elsewhere.

    Keeps the template, container and environment of ``profile`` and takes
    from ``target`` (normally the dev cluster's profile) what only the real
    site has: partitions and their limits, the node (so no GPUs where the
    target has none), account, QOS, gres and defaults. ``sbatch --test-only``
    of a script rendered from the result checks the site template's
    ``#SBATCH`` lines against a real controller without the site.
    """
    slurm = dataclasses.replace(
        profile.slurm,
        partition=target.slurm.partition,
        account=target.slurm.account,
        account_pattern=target.slurm.account_pattern,
        qos=target.slurm.qos,
        gres=target.slurm.gres,
        time_limit=target.slurm.time_limit,
        cpus_per_task=target.slurm.cpus_per_task,
        mem=target.slurm.mem,
    )
    simulator = profile.simulator
    if not target.node.gpus:
        simulator = dataclasses.replace(simulator, device="CPU", custatevec=False)
    return dataclasses.replace(
        profile,
        name=f"{profile.name}-on-{target.name}",
        slurm=slurm,
        simulator=simulator,
        node=target.node,
        partitions=target.partitions,
    )
