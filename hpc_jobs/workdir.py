"""Layout of a job's work dir: the one folder a batch job reads and writes.

``<work_root>/<job_id>/`` holds::

    circuit.qasm   the OpenQASM 2.0 source, exactly as submitted
    params.json    runner parameters (see :class:`RunParameters`)
    job.sbatch     the rendered sbatch script
    stdout.log     the batch job's stdout (Slurm ``--output``)
    stderr.log     the batch job's stderr (Slurm ``--error``)
    result.json    written by the runner on success (atomically)
    error.json     written by the runner on failure: {"error": "<reason>"}

A pack (several jobs in one batch job, :mod:`hpc_jobs.packing`) has its
own folder, ``<work_root>/_packs/<pack_id>/`` (``_`` cannot start a job id)::

    pack.json      the manifest: {"pack_id": ..., "jobs": [{"job_id", "work_dir"}, ...]}
    job.sbatch     the rendered sbatch script, which runs the runner with --pack
    stdout.log, stderr.log
    progress.jsonl the runner's progress, appended one JSON line at a time:
                   {"event": "started"}, then per job
                   {"job_id", "outcome": "completed", "result": {...}} or
                   {"job_id", "outcome": "failed", "error": "..."} or
                   {"job_id", "outcome": "skipped"} (cancelled), and finally
                   {"event": "finished"}

Each job of a pack still gets its own ``result.json``/``error.json``; a
job's work dir holding ``cancelled`` tells the runner to skip it.

The names are fixed here so the renderer, the runner, the executors and the
poller agree without passing paths around.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CIRCUIT_FILE = "circuit.qasm"
PARAMS_FILE = "params.json"
SCRIPT_FILE = "job.sbatch"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
CANCELLED_FILE = "cancelled"
PACKS_DIR = "_packs"
MANIFEST_FILE = "pack.json"
PROGRESS_FILE = "progress.jsonl"


@dataclass(frozen=True)
class RunParameters:
    """What the runner needs besides the circuit.

    ``shots``: number of samples (>= 1). ``seed``: simulator seed, so a run can
    be repeated. ``method``: an Aer simulation method name (``"automatic"``,
    ``"statevector"``, ``"stabilizer"``, ...). ``device``: ``"CPU"`` or
    ``"GPU"``, what the cluster profile asks for; the runner falls back to the
    CPU and says so when no GPU is usable. ``custatevec``: ask Aer for
    NVIDIA cuStateVec when running on an NVIDIA GPU. ``precision``:
    ``"double"`` or ``"single"``.
    """

    job_id: str
    shots: int
    seed: int
    method: str = "automatic"
    device: str = "CPU"
    custatevec: bool = False
    precision: str = "double"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> "RunParameters":
        """Parse ``params.json``; raises ``ValueError``/``TypeError`` on a bad file."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("params.json must hold a JSON object")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the whole new one.

    Writes a temporary file in the same directory, fsyncs it and renames it over
    ``path`` (rename is atomic within one POSIX file system).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json_atomically(path: Path, data: Any) -> None:
    """:func:`write_atomically` for a JSON document."""
    write_atomically(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` with a single ``write`` on an
    ``O_APPEND`` descriptor, then fsync: a reader sees whole lines, or a
    last line without its newline that it must not consume yet."""
    data = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def complete_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Parse the whole lines of a progress file read from some offset.

    Returns the records and the number of bytes consumed (up to and including
    the last newline); a trailing partial line is left for the next read. A
    line that is not a JSON object is skipped.
    """
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, end
