"""Render sbatch scripts from the Jinja2 templates in ``slurm_templates/``.

Rendering is a pure function of the profile, the job id and the work dir;
writing the script into the work dir is :func:`hpc_jobs.staging.stage_job`'s job.
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from pathlib import Path

import jinja2

from hpc_jobs.profiles import TEMPLATES_DIR, ClusterProfile

#: Our job ids (validated by the gateway) and the Slurm job name built from them.
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
JOB_NAME_PREFIX = "qcos-"
# A work dir appears in #SBATCH lines, which Slurm splits on whitespace and
# does not unquote: only plain path characters are allowed there.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9/_.+-]+$")


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
    return env


def render_sbatch(
    profile: ClusterProfile,
    *,
    job_id: str,
    work_dir: Path,
    templates_dir: Path = TEMPLATES_DIR,
) -> str:
    """The sbatch script text for one job.

    ``work_dir`` must be absolute and made of plain path characters; ``job_id``
    must match :data:`JOB_ID_PATTERN`. Raises ``ValueError`` otherwise, and
    ``jinja2.TemplateError`` for a broken template.
    """
    work_dir_text = str(work_dir)
    if not _SAFE_PATH.fullmatch(work_dir_text):
        raise ValueError(f"work dir {work_dir_text!r} must be an absolute path of plain characters")
    template = _environment(templates_dir).get_template(profile.template)
    return template.render(
        job_id=job_id,
        job_name=slurm_job_name(job_id),
        work_dir=work_dir_text,
        slurm=profile.slurm,
        simulator=profile.simulator,
        runner_python=profile.python,
        profile=profile,
    )
