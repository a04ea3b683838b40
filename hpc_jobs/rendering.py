"""Render sbatch scripts from the Jinja2 templates in ``slurm_templates/``.

Rendering is a pure function of the profile, the job id, the work dir and
the job's resources (:func:`hpc_jobs.sizing.size_job`); writing the script
into the work dir is :func:`hpc_jobs.staging.stage_job`'s job.

Templates get: ``job_id``, ``job_name``, ``work_dir``, ``resources``
(:class:`~hpc_jobs.sizing.JobResources`), ``slurm``, ``simulator``,
``node``, ``container`` (``runtime``, ``image``, ``binds``, ``flags``,
``python``, with ``{account}`` expanded), ``environment`` (``modules``,
``variables`` as a dict), ``runner_python`` and ``profile``.
``container.command`` is the shell-quoted command that starts Python for
the runner (the container's, or ``runner_python`` without one). Filters:
``shquote`` quotes a value for the shell, ``human_bytes`` writes a size
for people (``16.0 GiB``).
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import jinja2

from hpc_jobs.profiles import (
    _MEMORY,
    _SLURM_NAME,
    _TIME_LIMIT,
    TEMPLATES_DIR,
    ClusterProfile,
    validate_profile,
)
from hpc_jobs.sizing import JobResources, default_resources, format_bytes

#: Our job ids (validated by the gateway) and the Slurm job name built from them.
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
JOB_NAME_PREFIX = "qcos-"
# A work dir appears in #SBATCH lines, which Slurm splits on whitespace and
# does not unquote: only plain path characters are allowed there.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9/_.+-]+$")
_METHOD = re.compile(r"^[a-z_]{1,64}$")


def slurm_job_name(job_id: str) -> str:
    """The Slurm job name of a QCOS job: ``qcos-<job_id>``, so sacct/squeue find it by name."""
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise ValueError(f"invalid job id {job_id!r}")
    return JOB_NAME_PREFIX + job_id


@lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    env.filters["human_bytes"] = format_bytes
    return env


def validate_resources(resources: JobResources) -> None:
    """Raise ``ValueError`` unless every value that reaches an ``#SBATCH`` line is well formed."""
    checks = [
        ("partition", resources.partition, _SLURM_NAME),
        ("time_limit", resources.time_limit, _TIME_LIMIT),
        ("mem", resources.mem, _MEMORY),
        ("method", resources.method, _METHOD),
    ]
    for key, value, pattern in checks:
        if not isinstance(value, str) or not value or not pattern.fullmatch(value):
            raise ValueError(f"invalid resources.{key} {value!r}")
    for key in ("nodes", "ntasks_per_node", "cpus_per_task", "gpus_per_node"):
        value = getattr(resources, key)
        low = 0 if key == "gpus_per_node" else 1
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 100_000:
            raise ValueError(f"invalid resources.{key} {value!r}")
    if resources.device not in ("CPU", "GPU") or resources.precision not in ("double", "single"):
        raise ValueError("resources.device must be CPU or GPU and precision double or single")


def _runner_prefix(profile: ClusterProfile) -> list[str]:
    """argv that runs Python for the runner: ``<runtime> exec [flags] [--bind a,b] <image> <python>``
    with a container, else the profile's interpreter."""
    c = profile.container
    if not c.runtime:
        return [profile.python]
    argv = [c.runtime, "exec", *c.flags]
    if profile.container_binds:
        argv += ["--bind", ",".join(profile.container_binds)]
    return argv + [profile.container_image, c.python]


def render_sbatch(
    profile: ClusterProfile,
    *,
    job_id: str,
    work_dir: Path,
    resources: JobResources | None = None,
    templates_dir: Path = TEMPLATES_DIR,
) -> str:
    """The sbatch script text for one job.

    ``resources``: what :func:`hpc_jobs.sizing.size_job` chose; ``None``
    renders the profile's ``[slurm]`` defaults (one task, one node).
    ``work_dir`` must be absolute and made of plain path characters; ``job_id``
    must match :data:`JOB_ID_PATTERN`. Raises ``ValueError`` otherwise,
    :class:`~hpc_jobs.profiles.ProfileError` for an invalid profile (a
    missing account included), and ``jinja2.TemplateError`` for a broken
    template.
    """
    work_dir_text = str(work_dir)
    if not _SAFE_PATH.fullmatch(work_dir_text):
        raise ValueError(f"work dir {work_dir_text!r} must be an absolute path of plain characters")
    # Profiles built in code (model_copy) skip load_profile's checks.
    validate_profile(profile)
    if resources is None:
        resources = default_resources(profile)
    validate_resources(resources)
    if resources.gpus_per_node and profile.slurm.gres:
        raise ValueError("profile sets slurm.gres and the job asks for GPUs: one of them must go")
    container = SimpleNamespace(
        runtime=profile.container.runtime,
        image=profile.container_image,
        binds=profile.container_binds,
        flags=profile.container.flags,
        python=profile.container.python,
        command=shlex.join(_runner_prefix(profile)),
    )
    environment = SimpleNamespace(
        modules=profile.environment.modules,
        variables=dict(profile.environment.variables),
    )
    template = _environment(templates_dir).get_template(profile.template)
    return template.render(
        job_id=job_id,
        job_name=slurm_job_name(job_id),
        work_dir=work_dir_text,
        resources=resources,
        slurm=profile.slurm,
        simulator=profile.simulator,
        node=profile.node,
        container=container,
        environment=environment,
        runner_python=profile.python,
        profile=profile,
    )
