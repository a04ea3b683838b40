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

The tables are pydantic models: every value that can reach an ``#SBATCH``
line or a shell line is checked against a pattern, numbers must be TOML
numbers, and unknown keys are refused, so a profile can neither inject
options or commands nor hide a typo. Models are immutable;
``model_copy(update=...)`` builds changed ones (unchecked:
:func:`validate_profile` checks them again, as rendering does).
"""

from __future__ import annotations

import copy
import re
import sys
import tomllib
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

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
_METHOD = re.compile(r"^[a-z_]{1,64}$")

_BINARY_UNITS = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
CONTAINER_RUNTIMES = ("", "singularity", "apptainer")


class ProfileError(ValueError):
    """A profile file is missing or holds a value Slurm would not accept."""


def _matching(pattern: re.Pattern, what: str):
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


SlurmName = Annotated[str, Strict(), _matching(_SLURM_NAME, "a Slurm name (letters, digits, _ . -)")]
TimeLimit = Annotated[str, Strict(), _matching(_TIME_LIMIT, "a Slurm time limit ([days-]hours:minutes:seconds)")]
Memory = Annotated[str, Strict(), _matching(_MEMORY, "a Slurm memory size (a number, then K, M, G or T)")]
#: A whole number from ``low`` to a million (a TOML integer, not a boolean).
Count = Annotated[int, Strict(), Field(ge=0, le=1_000_000)]
PositiveCount = Annotated[int, Strict(), Field(ge=1, le=1_000_000)]


class _Table(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SlurmOptions(_Table):
    """The ``#SBATCH`` options of a profile. Empty strings mean "leave unset".

    ``partition``, ``time_limit``, ``cpus_per_task``, ``mem``: what a job
    gets when it is rendered without sized resources; ``time_limit`` is
    also the shortest limit sizing asks for. ``account_pattern``: a regular
    expression the account must match in full (``"project_[0-9]+"`` on
    LUMI, where every job is billed to a project); empty: any account,
    including none.
    """

    partition: SlurmName = "debug"
    account: SlurmName = ""
    account_pattern: Annotated[str, Strict()] = ""
    qos: SlurmName = ""
    time_limit: TimeLimit = "00:10:00"
    cpus_per_task: Annotated[int, Strict(), Field(ge=1, le=1024)] = 1
    mem: Memory = "2G"
    gres: Annotated[str, Strict(), _matching(_GRES, "a gres spec")] = ""

    @field_validator("account_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class SimulatorOptions(_Table):
    """How the runner simulates: Aer ``method``, ``device`` (CPU/GPU),
    ``custatevec`` (NVIDIA only) and ``precision`` (double/single).

    ``memory_headroom``: factor on the state vector's size that sizing
    reserves (Aer's chunk-swap buffers on several GPUs, fused-gate matrices,
    the Python process); 1.25 means 25 % more than 16·2ⁿ bytes.
    """

    method: Annotated[str, Strict(), _matching(_METHOD, "an Aer method name")] = "automatic"
    device: Literal["CPU", "GPU"] = "CPU"
    custatevec: Annotated[bool, Strict()] = False
    precision: Literal["double", "single"] = "double"
    memory_headroom: Annotated[float, Strict(), Field(ge=1.0, le=16.0)] = 1.25


class NodeSpec(_Table):
    """One compute node of the profile's partitions, as jobs may use it.

    ``cores``: cores a job may use (LUMI-G: 56 of 64). ``memory``: host
    memory a job may use, Slurm syntax (``"480G"``). ``gpus``: GPUs per node
    as Slurm counts them (LUMI-G: 8 GCDs); 0 for CPU nodes. ``gpu_memory``:
    memory of one GPU (``"64G"``). ``gpu_type``: typed GRES name
    (``--gres=gpu:<type>:N``), empty for untyped. ``cpus_per_gpu``: cores
    to give each GPU's share of the job.
    """

    cores: PositiveCount = 1
    memory: Memory = "2G"
    gpus: Count = 0
    gpu_memory: Memory = "0"
    gpu_type: Annotated[str, Strict(), _matching(_GPU_TYPE, "a GRES type name")] = ""
    cpus_per_gpu: PositiveCount = 1

    @model_validator(mode="after")
    def _gpus_have_memory(self) -> "NodeSpec":
        if self.gpus and parse_memory(self.gpu_memory) <= 0:
            raise ValueError("node.gpu_memory is required when node.gpus > 0")
        return self


class Partition(_Table):
    """A partition jobs may be sent to: ``max_nodes`` per job and
    ``max_time`` (Slurm syntax). ``auto``: whether sizing may choose it
    (false for development partitions such as LUMI's ``dev-g``)."""

    name: SlurmName
    max_nodes: PositiveCount = 1
    max_time: TimeLimit = "01:00:00"
    auto: Annotated[bool, Strict()] = True


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class ContainerOptions(_Table):
    """The container that runs ``python -m hpc_jobs.runner``.

    ``runtime``: ``"singularity"``, ``"apptainer"`` or ``""`` (no container:
    the profile's ``runner.python`` runs directly). ``image``: path of the
    SIF file. ``binds``: host paths bound at the same path inside. Both may
    contain ``{account}``, replaced by ``slurm.account`` (and checked as
    plain absolute paths once replaced). ``flags``: extra ``exec`` flags
    (``--nv`` for NVIDIA). ``python``: interpreter inside.
    """

    runtime: Literal["", "singularity", "apptainer"] = ""
    image: Annotated[str, Strict()] = ""
    binds: Annotated[tuple[Annotated[str, Strict()], ...], BeforeValidator(_as_tuple)] = ()
    flags: Annotated[tuple[Annotated[str, Strict(), _matching(_CONTAINER_FLAG, "an exec flag (--name)")], ...],
                     BeforeValidator(_as_tuple)] = ()
    python: Annotated[str, Strict(), _matching(_PROGRAM, "a program name or path")] = "python3"


def _variables(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple((str(name), str(text)) for name, text in value.items())
    return value


def _variable(pair: tuple[str, str]) -> tuple[str, str]:
    name, value = pair
    if not _ENV_NAME.fullmatch(name) or "\n" in value or "\0" in value:
        raise ValueError(f"invalid environment.variables entry {name!r}")
    return pair


class EnvironmentOptions(_Table):
    """Lines run before the simulation: ``module load`` of ``modules`` in
    order, then ``export NAME=value`` of ``variables`` (values are quoted).
    In TOML ``variables`` is a table; here it is a tuple of pairs."""

    modules: Annotated[tuple[Annotated[str, Strict(), _matching(_MODULE, "a module name")], ...],
                       BeforeValidator(_as_tuple)] = ()
    variables: Annotated[tuple[Annotated[tuple[str, str], AfterValidator(_variable)], ...],
                         BeforeValidator(_variables)] = ()


class ClusterProfile(_Table):
    """One site's way of running a QCOS job; see ``deploy/profiles/dev.toml``.

    ``runner_python`` is the file's ``[runner] python``. Without a
    ``[[partitions]]`` table (older files) the profile has one partition:
    ``slurm.partition``, one node, ``slurm.time_limit``.
    """

    name: Annotated[str, Strict(), Field(min_length=1, max_length=64)]
    template: Annotated[str, Strict()]
    slurm: SlurmOptions = SlurmOptions()
    simulator: SimulatorOptions = SimulatorOptions()
    runner_python: Annotated[str, Strict()] = ""
    node: NodeSpec = NodeSpec()
    partitions: Annotated[tuple[Partition, ...], BeforeValidator(_as_tuple)] = ()
    container: ContainerOptions = ContainerOptions()
    environment: EnvironmentOptions = EnvironmentOptions()

    @model_validator(mode="before")
    @classmethod
    def _file_layout(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "runner" in data:
            runner = data.pop("runner")
            if not isinstance(runner, Mapping) or set(runner) - {"python"}:
                raise ValueError("[runner] holds only python")
            data.setdefault("runner_python", runner.get("python", ""))
        if not data.get("partitions"):
            slurm = data.get("slurm") or {}
            slurm = slurm.model_dump() if isinstance(slurm, SlurmOptions) else slurm
            if isinstance(slurm, Mapping):
                data["partitions"] = ({"name": slurm.get("partition", "debug"), "max_nodes": 1,
                                       "max_time": slurm.get("time_limit", "00:10:00")},)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "ClusterProfile":
        if len({p.name for p in self.partitions}) != len(self.partitions):
            raise ValueError("partition names must be unique")
        if not any(p.auto for p in self.partitions):
            raise ValueError("at least one partition must have auto = true")
        if self.container.runtime:
            paths = [("container.image", self.container_image)] + [("container.binds", b)
                                                                   for b in self.container_binds]
            for key, value in paths:
                if not _PATH.fullmatch(value) or ".." in value.split("/"):
                    raise ValueError(f"invalid {key} {value!r} (absolute path of plain characters)")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+\.j2", self.template) or not (TEMPLATES_DIR / self.template).is_file():
            raise ValueError(f"template {self.template} not in {TEMPLATES_DIR}")
        problem = _account_problem(self)
        if problem:
            raise ValueError(problem)
        return self

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
        profile = ClusterProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"cluster profile {candidate}: {_describe(exc)}") from None
    _CHECKED.add(profile)
    return profile


#: Profiles known to be valid (compared by value, held weakly): rendering checks each profile once.
_CHECKED: "weakref.WeakSet[ClusterProfile]" = weakref.WeakSet()


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def _account_problem(profile: ClusterProfile) -> str | None:
    pattern = profile.slurm.account_pattern
    if pattern and not re.fullmatch(pattern, profile.slurm.account):
        return (f"slurm.account {profile.slurm.account!r} is not a valid account; this site bills every job to an "
                f"account matching {pattern!r} (e.g. --account=project_<id> on LUMI). Set slurm.account in the profile.")
    return None


def check_account(profile: ClusterProfile) -> None:
    """Raise :class:`ProfileError` when the profile needs an account
    (``slurm.account_pattern``) and ``slurm.account`` does not match it."""
    problem = _account_problem(profile)
    if problem:
        raise ProfileError(f"profile {profile.name}: {problem}")


def validate_profile(profile: ClusterProfile) -> None:
    """Check a profile built in code (``model_copy``) as :func:`load_profile`
    checks files. Raises :class:`ProfileError`."""
    if profile in _CHECKED:
        return
    try:
        ClusterProfile.model_validate(profile.model_dump())
    except ValidationError as exc:
        raise ProfileError(f"profile {profile.name}: {_describe(exc)}") from None
    _CHECKED.add(profile)


def dry_run_variant(profile: ClusterProfile, target: ClusterProfile) -> ClusterProfile:
    """``profile`` with ``target``'s site-only settings, to dry-run its template elsewhere.

    Keeps the template, container and environment of ``profile`` and takes
    from ``target`` (normally the dev cluster's profile) what only the real
    site has: partitions and their limits, the node (so no GPUs where the
    target has none), account, QOS, gres and defaults. ``sbatch --test-only``
    of a script rendered from the result checks the site template's
    ``#SBATCH`` lines against a real controller without the site.
    """
    slurm = profile.slurm.model_copy(update={
        "partition": target.slurm.partition,
        "account": target.slurm.account,
        "account_pattern": target.slurm.account_pattern,
        "qos": target.slurm.qos,
        "gres": target.slurm.gres,
        "time_limit": target.slurm.time_limit,
        "cpus_per_task": target.slurm.cpus_per_task,
        "mem": target.slurm.mem,
    })
    simulator = profile.simulator
    if not target.node.gpus:
        simulator = simulator.model_copy(update={"device": "CPU", "custatevec": False})
    return profile.model_copy(update={
        "name": f"{profile.name}-on-{target.name}",
        "slurm": slurm,
        "simulator": simulator,
        "node": target.node,
        "partitions": target.partitions,
    })
