"""Slurm commands as objects: each builds its argv and parses its output.

Nothing here runs a process. A :class:`~hpc_jobs.transports.base.Transport`
runs ``command.argv()`` and hands the :class:`CommandResult` back to
``command.parse(result)``; the split follows FirecREST v2's
``scheduler_clients/slurm`` and lets every parser be tested against output
captured from a real cluster (``tests/fixtures/slurm/``).

Formats were checked against Slurm 22.05; they use explicit, pipe-separated
field lists so a site's ``SQUEUE_FORMAT``/``SACCT_FORMAT`` cannot change
them. Free-text fields (job name, reason) come last so a ``|`` inside them
cannot shift the other columns.

Job ids are strings everywhere (``"1234"``, ``"1234_5"``, ``"1234+0"``) and
are only ever compared whole, never by prefix or as integers.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, ClassVar, Collection, Generic, Iterable, Iterator, Sequence, TypeVar

from hpc_jobs.executors.base import ExecutorError, SubmissionUnconfirmed
from hpc_jobs.transports.base import CommandResult

log = logging.getLogger(__name__)

__all__ = [
    "CLUSTER_NAME_PATTERN",
    "JOB_NAME_PATTERN",
    "Sacct",
    "SacctRow",
    "Sbatch",
    "SbatchAnswerLost",
    "SbatchTestOnly",
    "Scancel",
    "ScontrolPing",
    "Sinfo",
    "SinfoRow",
    "SlurmCommand",
    "Squeue",
    "SqueueByName",
    "SQUEUE_FORMAT",
    "SqueueRow",
    "SqueueStart",
    "StartEstimate",
    "SubmittedJob",
    "parse_slurm_datetime",
    "parse_slurm_duration",
    "scrub_slurm_message",
    "validate_cluster_name",
    "validate_job_id",
    "validate_job_name",
]

T = TypeVar("T")

#: Job names we hand to ``sbatch --job-name``: also safe in file names, logs
#: and ``sacct --name`` lists (which are comma-separated).
JOB_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")

#: Cluster names we pass to ``-M`` (one cluster; never a list or ``all``).
CLUSTER_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")

# A plain job, an array task or a het-job component. Array *expressions*
# ("12_[1-5%2]") are output-only and never accepted as input.
_JOB_ID_PATTERN = re.compile(r"[0-9]+(?:_[0-9]+|\+[0-9]+)?")

# Messages meaning "the scheduler could not be reached or is busy", as
# opposed to "the scheduler refused this request". Matched case-insensitively.
_RETRYABLE_MARKERS = (
    "unable to contact slurm controller",
    "socket timed out",
    "slurm temporarily unable to accept job",
    "resource temporarily unavailable",
    "connection refused",
    "communication connection failure",
    "zero bytes were transmitted or received",
    "problem talking to the database",
    "slurmdbd is not running",
    "slurm backup controller in standby mode",
)

# How Slurm spells "no value"; sacct says "None assigned" for the node list
# of a job that never started.
_NONE_WORDS = frozenset({"", "None", "None assigned", "Unknown", "N/A", "(null)", "INVALID"})


def validate_job_name(name: str) -> str:
    """Return ``name`` if it is 1–128 characters of ``[A-Za-z0-9._-]``.

    Raises ``ValueError`` otherwise.
    """
    if not isinstance(name, str) or not JOB_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid Slurm job name {name!r}: use 1-128 characters of A-Z a-z 0-9 . _ -"
        )
    return name


def validate_cluster_name(cluster: str) -> str:
    """Return ``cluster`` if it is one Slurm cluster name (1-64 characters of
    ``[A-Za-z0-9._-]``, not starting with ``.`` or ``-``, not ``all``).

    Raises ``ValueError`` otherwise.
    """
    if not isinstance(cluster, str) or not CLUSTER_NAME_PATTERN.fullmatch(cluster) or cluster.lower() == "all":
        raise ValueError(f"invalid Slurm cluster name {cluster!r}")
    return cluster


def _cluster_option(cluster: str | None) -> list[str]:
    return [] if cluster is None else ["-M", cluster]


def validate_job_id(job_id: str) -> str:
    """Return ``job_id`` if it is a plain id, ``<array>_<task>`` or ``<het>+<offset>``.

    Raises ``ValueError`` otherwise (including for ints: ids are strings).
    """
    if not isinstance(job_id, str) or not _JOB_ID_PATTERN.fullmatch(job_id):
        raise ValueError(f"invalid Slurm job id {job_id!r}")
    return job_id


def _job_id_list(job_ids: Iterable[str]) -> tuple[str, ...]:
    # Sorted and de-duplicated so the same set always yields the same argv.
    ids = tuple(sorted({validate_job_id(j) for j in job_ids}, key=_job_id_sort_key))
    if not ids:
        # An empty --jobs= would mean "all jobs": never what a caller wants.
        raise ValueError("at least one job id is required")
    return ids


def _job_id_sort_key(job_id: str) -> tuple[int, str]:
    head = re.match(r"[0-9]+", job_id)
    return (int(head.group()) if head else -1, job_id)


def parse_slurm_datetime(text: str) -> datetime | None:
    """Parse a Slurm timestamp (``2024-05-01T12:00:00``) as naive local time.

    Slurm prints the controller's local time without a zone. Returns ``None``
    for ``Unknown``, ``None``, ``N/A`` and empty fields.
    """
    text = text.strip()
    if text in _NONE_WORDS:
        return None
    return datetime.fromisoformat(text)


def parse_slurm_duration(text: str) -> timedelta | None:
    """Parse a Slurm duration: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``.

    Slurm reads ``"5"`` as minutes (``--time=5``); squeue ``%M`` prints
    ``"0:05"`` (5 s) and ``"1-02:03:04"``. Returns ``None`` for
    ``UNLIMITED``, ``NOT_SET``, ``INVALID``, ``N/A`` and empty fields.
    Raises ``ValueError`` for anything else.
    """
    text = text.strip()
    if text in _NONE_WORDS or text in {"UNLIMITED", "NOT_SET", "Partition_Limit"}:
        return None
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
        parts = text.split(":")
        # "D-HH", "D-HH:MM", "D-HH:MM:SS"
        parts += ["0"] * (3 - len(parts))
        hours, minutes, seconds = parts
    else:
        parts = text.split(":")
        if len(parts) == 1:
            hours, minutes, seconds = "0", parts[0], "0"
        elif len(parts) == 2:
            hours, (minutes, seconds) = "0", parts
        elif len(parts) == 3:
            hours, minutes, seconds = parts
        else:
            raise ValueError(f"not a Slurm duration: {text!r}")
    try:
        return timedelta(
            days=days, hours=int(hours), minutes=int(minutes), seconds=float(seconds)
        )
    except ValueError:
        raise ValueError(f"not a Slurm duration: {text!r}") from None


def _optional(text: str) -> str | None:
    text = text.strip()
    return None if text in _NONE_WORDS else text


def _slurm_message(result: CommandResult) -> str:
    """The lines that explain a failure: Slurm's ``error:``/``fatal:`` lines if
    any, else the whole of stderr (or stdout), trimmed."""
    text = result.stderr.strip() or result.stdout.strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    flagged = [ln for ln in lines if re.search(r"\b(error|fatal):", ln, re.IGNORECASE)]
    message = "; ".join(flagged or lines[-5:])
    return message or f"{result.argv[0] if result.argv else 'command'} exited with status {result.returncode}"


# What a Slurm message may say about the service's own machines and files.
_PATH = re.compile(r"(?<![A-Za-z0-9_.~/-])~?/[^\s'\"`(),;]*")
_USER_AT_HOST = re.compile(r"\b[A-Za-z0-9._-]+@[A-Za-z0-9.-]+")
_IPV4 = re.compile(r"\b[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?::[0-9]{1,5})?\b")
_HOST_PORT = re.compile(r"\b[A-Za-z][A-Za-z0-9.-]*:[0-9]{2,5}\b")
_DOMAIN_NAME = re.compile(r"\b(?:[A-Za-z0-9-]+\.){2,}[A-Za-z]{2,}\b")
_SCRUBBED_LENGTH = 500


def scrub_slurm_message(text: str) -> str:
    """``text`` (a Slurm error message) without the service's paths and hosts, for a user to read.

    Replaces absolute and ``~`` paths with ``<path>``, ``user@host`` with
    ``<user>@<host>``, IPv4 addresses and ``host:port`` with ``<address>``, and
    names with two or more dots (``login1.cluster.example.org``) with
    ``<host>``; keeps Slurm's wording (``account/partition``, ``N/A``), and
    at most 500 characters. A bare host name without dots cannot be told
    from a word and stays.
    """
    text = _PATH.sub("<path>", text)
    text = _USER_AT_HOST.sub("<user>@<host>", text)
    text = _IPV4.sub("<address>", text)
    text = _HOST_PORT.sub("<address>", text)
    text = _DOMAIN_NAME.sub("<host>", text)
    return text if len(text) <= _SCRUBBED_LENGTH else text[: _SCRUBBED_LENGTH - 3] + "..."


def _is_retryable(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _RETRYABLE_MARKERS)


def _knows_none_of_the_ids(result: CommandResult) -> bool:
    """squeue's failure when none of the ``--jobs`` ids is known any more (exit 1)."""
    return "invalid job id specified" in (result.stderr + result.stdout).lower()


def _raise_for(result: CommandResult) -> None:
    message = _slurm_message(result)
    raise ExecutorError(message, retryable=_is_retryable(message))


@contextmanager
def _reading(command: str) -> Iterator[None]:
    # A field that does not parse means Slurm answered in a shape we do not
    # know: report it as a scheduler problem, not as a bug in the caller.
    try:
        yield
    except ValueError as exc:
        raise ExecutorError(f"unexpected {command} output: {exc}") from exc


def _field(parse: Callable[[str], T], text: str, command: str, job_id: str) -> T | None:
    """A time or duration field of one row, ``None`` (logged) when it does not
    parse. Such fields only inform (elapsed, start, limits); one unreadable
    date must not make the whole answer unreadable and void a poll cycle.
    A row without the format's fields still does: dropping it could give up
    a live job."""
    try:
        return parse(text)
    except ValueError:
        log.warning("%s: job %s has a field that does not parse: %r; read as empty", command, job_id, text[:64])
        return None


def _split_row(line: str, n_fields: int) -> list[str]:
    # The last field is free text: let it keep any "|" it contains.
    parts = line.split("|", n_fields - 1)
    if len(parts) != n_fields:
        raise ExecutorError(f"unexpected Slurm output line (want {n_fields} fields): {line!r}")
    return parts


class SlurmCommand(Generic[T]):
    """Base of all commands: ``argv()`` to run, ``parse(result)`` to read the answer."""

    def argv(self) -> list[str]:
        raise NotImplementedError

    def parse(self, result: CommandResult) -> T:
        raise NotImplementedError


# --------------------------------------------------------------------------- sbatch


@dataclass(frozen=True)
class SubmittedJob:
    """What sbatch answered: the job id (``"1234"``) and, in a multi-cluster
    setup (``-M``), the cluster that took the job (``None`` otherwise)."""

    slurm_job_id: str
    cluster: str | None = None


class SbatchAnswerLost(SubmissionUnconfirmed):
    """sbatch may have created the job, but its answer names no single job id
    (exit 0 without one, several ids, or an id and then a failure).

    The job must be looked up by its (unique) name (:class:`SqueueByName`,
    :class:`Sacct` with ``job_names``), never submitted again. An
    :class:`ExecutorError` (via :class:`SubmissionUnconfirmed`), not
    retryable.
    """


@dataclass(frozen=True)
class StartEstimate:
    """``sbatch --test-only``'s estimate.

    ``start``: naive local time of the controller. ``processors``: CPUs the
    job would get. ``nodes``: Slurm host list (``"node[01-02]"``).
    ``job_id`` is the id the job *would* have had; no job exists.
    """

    job_id: str
    start: datetime
    processors: int
    nodes: str
    partition: str


_PARSABLE_LINE = re.compile(r"(?P<id>[0-9]+)(?:;(?P<cluster>[A-Za-z0-9_][A-Za-z0-9._-]{0,63}))?")
_SUBMITTED_LINE = re.compile(
    r"\bSubmitted batch job (?P<id>[0-9]+)(?: on cluster (?P<cluster>[A-Za-z0-9_][A-Za-z0-9._-]{0,63}))?"
)


def _submitted_ids(text: str, bare_ids: bool) -> Iterator[re.Match[str]]:
    """The job ids in sbatch's output ``text``: ``Submitted batch job ...``
    anywhere, and with ``bare_ids`` lines that are nothing but ``<id>[;<cluster>]``."""
    for line in text.splitlines():
        line = line.strip()
        match = _PARSABLE_LINE.fullmatch(line) if bare_ids else None
        if match:
            yield match
        else:
            yield from _SUBMITTED_LINE.finditer(line)
_TEST_ONLY_LINE = re.compile(
    r"Job (?P<id>[0-9]+) to start at (?P<start>\S+) using (?P<procs>[0-9]+) processors?"
    r" on nodes (?P<nodes>\S+) in partition (?P<partition>\S+)"
)


@dataclass(frozen=True)
class Sbatch(SlurmCommand[SubmittedJob]):
    """``sbatch --parsable`` of an existing batch script.

    ``script``, ``chdir``, ``output``, ``error``: paths on the cluster
    (absolute, since the transport may run elsewhere). ``job_name`` must
    match :data:`JOB_NAME_PATTERN` (``ValueError`` at construction).
    ``extra_args``: further sbatch options, each one argv element
    (``"--partition=debug"``); they come before the script.
    """

    script: Path | str
    job_name: str
    chdir: Path | str
    output: Path | str
    error: Path | str
    extra_args: Sequence[str] = ()

    def __post_init__(self) -> None:
        validate_job_name(self.job_name)
        object.__setattr__(self, "extra_args", tuple(self.extra_args))
        for arg in self.extra_args:
            if not isinstance(arg, str) or not arg.startswith("-"):
                raise ValueError(f"extra sbatch argument must be an option string: {arg!r}")

    def _options(self) -> list[str]:
        return [
            "--parsable",
            f"--job-name={self.job_name}",
            f"--chdir={self.chdir}",
            f"--output={self.output}",
            f"--error={self.error}",
            *self.extra_args,
        ]

    def argv(self) -> list[str]:
        return ["sbatch", *self._options(), str(self.script)]

    def parse(self, result: CommandResult) -> SubmittedJob:
        """The job id (and cluster) in sbatch's answer, among any notices.

        Recognised, on stdout (where ``--parsable`` writes) or stderr, around
        any site notices and warnings: a line that is only ``<id>`` or
        ``<id>;<cluster>``, and ``Submitted batch job <id>`` with an optional
        `` on cluster <cluster>`` (sbatch without ``--parsable``, e.g. behind
        a site wrapper).

        Raises :class:`SbatchAnswerLost` when the job may exist but its id is
        not known: exit 0 without a recognisable id, several different ids,
        or an id printed by an sbatch that then failed. Raises
        :class:`ExecutorError` for a refusal (exit not 0): its message is
        Slurm's reason through :func:`scrub_slurm_message` (fit for the
        job's ``error``), ``retryable`` for a busy or unreachable controller.
        """
        found = {
            SubmittedJob(match["id"], match["cluster"])
            for text, bare_ids in ((result.stdout, True), (result.stderr, False))
            for match in _submitted_ids(text, bare_ids)
        }
        output = scrub_slurm_message((result.stdout + result.stderr).strip())
        if result.returncode != 0:
            if found:
                raise SbatchAnswerLost(
                    f"sbatch exited with status {result.returncode} after naming job"
                    f" {', '.join(sorted(job.slurm_job_id for job in found))}: {output!r}"
                )
            message = scrub_slurm_message(_slurm_message(result))
            raise ExecutorError(message, retryable=_is_retryable(message))
        if len(found) == 1:
            return found.pop()
        if found:
            raise SbatchAnswerLost(
                f"sbatch named several job ids ({', '.join(sorted(job.slurm_job_id for job in found))}): {output!r}"
            )
        raise SbatchAnswerLost(f"sbatch printed no job id: {output!r}")


@dataclass(frozen=True)
class SbatchTestOnly(Sbatch):
    """``sbatch --test-only``: validate the job and estimate its start; submits nothing."""

    def argv(self) -> list[str]:
        return ["sbatch", "--test-only", *self._options(), str(self.script)]

    def parse(self, result: CommandResult) -> StartEstimate:  # type: ignore[override]
        """Read ``sbatch: Job 12 to start at <time> using 1 processors on nodes
        n1 in partition debug`` (stderr in 22.05). Raises :class:`ExecutorError`
        when sbatch refused the job or printed no estimate."""
        if result.returncode != 0:
            _raise_for(result)
        match = _TEST_ONLY_LINE.search(result.stderr) or _TEST_ONLY_LINE.search(result.stdout)
        if not match:
            raise ExecutorError(
                f"sbatch --test-only printed no estimate: {(result.stderr + result.stdout).strip()[:500]!r}"
            )
        start = parse_slurm_datetime(match["start"])
        if start is None:
            raise ExecutorError(f"sbatch --test-only gave no start time: {match.group()!r}")
        return StartEstimate(
            job_id=match["id"],
            start=start,
            processors=int(match["procs"]),
            nodes=match["nodes"],
            partition=match["partition"],
        )


# --------------------------------------------------------------------------- squeue


@dataclass(frozen=True)
class SqueueRow:
    """One ``squeue`` line.

    ``job_id``: as squeue prints it (``"12"``, ``"12_3"``, ``"12_[4-5%2]"``
    for still-pending array tasks, ``"12+0"`` for a het component).
    ``state``: long name (``"PENDING"``). ``reason``: ``None`` when Slurm says
    ``None``. ``elapsed``/``time_limit``: ``None`` when unlimited/unknown.
    ``start_time``: actual or expected start, naive local time, if known.
    ``array_job_id``: the array's id; for other jobs Slurm's raw id (so
    ``"45"`` for het component ``"44+1"``). ``array_task_id``: ``"3"``, the
    still-pending range ``"4-5%2"``, or ``None`` for non-array jobs.
    """

    job_id: str
    state: str
    reason: str | None
    partition: str
    elapsed: timedelta | None
    time_limit: timedelta | None
    start_time: datetime | None
    submit_time: datetime | None
    node_list: str | None
    array_job_id: str
    array_task_id: str | None
    name: str


#: ``squeue --format`` of :class:`SqueueRow`: the free-text fields last.
SQUEUE_FORMAT = "%i|%T|%P|%M|%l|%S|%V|%N|%F|%K|%r|%j"
_SQUEUE_FIELDS = 12


def _is_cluster_header(line: str) -> bool:
    # With -M, squeue may print "CLUSTER: <name>" before that cluster's rows.
    return line.startswith("CLUSTER: ")


def _squeue_rows(result: CommandResult) -> dict[str, SqueueRow]:
    """Rows of a ``squeue --format=SQUEUE_FORMAT`` answer, keyed by ``job_id``."""
    rows: dict[str, SqueueRow] = {}
    with _reading("squeue"):
        for line in result.stdout.splitlines():
            if not line.strip() or _is_cluster_header(line):
                continue
            (job_id, state, partition, elapsed, limit, start, submit, nodes,
             array_job, array_task, reason, name) = _split_row(line, _SQUEUE_FIELDS)
            job_id = job_id.strip()
            rows[job_id] = SqueueRow(
                job_id=job_id,
                state=state.strip(),
                reason=_optional(reason),
                partition=partition.strip(),
                elapsed=_field(parse_slurm_duration, elapsed, "squeue", job_id),
                time_limit=_field(parse_slurm_duration, limit, "squeue", job_id),
                start_time=_field(parse_slurm_datetime, start, "squeue", job_id),
                submit_time=_field(parse_slurm_datetime, submit, "squeue", job_id),
                node_list=_optional(nodes),
                array_job_id=array_job.strip(),
                array_task_id=_optional(array_task),
                name=name,
            )
    return rows


@dataclass(frozen=True)
class Squeue(SlurmCommand[dict[str, SqueueRow]]):
    """``squeue`` for a set of job ids, in one call.

    Without ``--states`` squeue lists only live jobs (pending, running,
    completing, suspended...); finished ones are sacct's business.
    ``clusters``: ask that cluster (``-M``) in a multi-cluster setup.
    Raises ``ValueError`` for an empty or malformed id set or cluster name.
    """

    job_ids: Collection[str]
    clusters: str | None = None

    FORMAT: ClassVar[str] = SQUEUE_FORMAT
    _FIELDS: ClassVar[int] = _SQUEUE_FIELDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "job_ids", _job_id_list(self.job_ids))
        if self.clusters is not None:
            validate_cluster_name(self.clusters)

    def argv(self) -> list[str]:
        return [
            "squeue",
            *_cluster_option(self.clusters),
            "--noheader",
            f"--format={self.FORMAT}",
            f"--jobs={','.join(self.job_ids)}",
        ]

    def parse(self, result: CommandResult) -> dict[str, SqueueRow]:
        """Rows keyed by ``job_id``. Returns ``{}`` when squeue knows none of the
        ids (it then exits 1 with ``Invalid job id specified``). Raises
        :class:`ExecutorError` for any other failure."""
        if result.returncode != 0:
            if _knows_none_of_the_ids(result):
                return {}
            _raise_for(result)
        return _squeue_rows(result)


@dataclass(frozen=True)
class SqueueByName(SlurmCommand[dict[str, SqueueRow]]):
    """``squeue`` of the caller's own jobs with any of ``job_names``, in one call.

    For finding jobs whose submission answer was lost (:class:`SbatchAnswerLost`):
    ``--me`` (never another user's job of the same name) and ``--states=all``
    (pending, running, and finished jobs slurmctld still remembers, for
    ``MinJobAge``, 300 s by default; older ones are sacct's business).
    ``clusters``: ask that cluster (``-M``). Raises ``ValueError`` for an
    empty name set, a name outside :data:`JOB_NAME_PATTERN` or a bad
    cluster name.
    """

    job_names: Collection[str]
    clusters: str | None = None

    def __post_init__(self) -> None:
        names = tuple(sorted({validate_job_name(name) for name in self.job_names}))
        if not names:
            # An empty --name= would list every job.
            raise ValueError("at least one job name is required")
        object.__setattr__(self, "job_names", names)
        if self.clusters is not None:
            validate_cluster_name(self.clusters)

    def argv(self) -> list[str]:
        return [
            "squeue",
            *_cluster_option(self.clusters),
            "--noheader",
            f"--format={SQUEUE_FORMAT}",
            "--me",
            "--states=all",
            f"--name={','.join(self.job_names)}",
        ]

    def parse(self, result: CommandResult) -> dict[str, SqueueRow]:
        """Rows keyed by ``job_id``, each with its ``name``; only the names
        asked for. ``{}`` when none exists. Raises :class:`ExecutorError`."""
        if result.returncode != 0:
            _raise_for(result)
        wanted = set(self.job_names)
        return {job_id: row for job_id, row in _squeue_rows(result).items() if row.name in wanted}


@dataclass(frozen=True)
class SqueueStart(SlurmCommand["datetime | None"]):
    """``squeue --start`` for one job: when the scheduler expects it to start.

    Only pending jobs have an expected start; for others, and while the
    scheduler has not planned the job yet (``N/A``), the answer is ``None``.
    ``clusters``: ask that cluster (``-M``).
    """

    job_id: str
    clusters: str | None = None

    def __post_init__(self) -> None:
        validate_job_id(self.job_id)
        if self.clusters is not None:
            validate_cluster_name(self.clusters)

    def argv(self) -> list[str]:
        return ["squeue", *_cluster_option(self.clusters), "--start", "--noheader", "--format=%i|%S",
                f"--jobs={self.job_id}"]

    def parse(self, result: CommandResult) -> datetime | None:
        """Naive controller-local time, or ``None``. Raises :class:`ExecutorError` on failure."""
        if result.returncode != 0:
            if _knows_none_of_the_ids(result):
                return None
            _raise_for(result)
        for line in result.stdout.splitlines():
            job_id, _, start = line.partition("|")
            if job_id.strip() == self.job_id:
                return parse_slurm_datetime(start.strip())
        return None


@dataclass(frozen=True)
class SqueueAll(Squeue):
    """``squeue`` of the whole live queue the caller may see, in one call
    (for admins: the cluster's queue, not only our jobs)."""

    job_ids: Collection[str] = ()

    def __post_init__(self) -> None:
        if self.clusters is not None:
            validate_cluster_name(self.clusters)

    def argv(self) -> list[str]:
        return ["squeue", *_cluster_option(self.clusters), "--noheader", f"--format={self.FORMAT}"]


# --------------------------------------------------------------------------- sacct


@dataclass(frozen=True)
class SacctRow:
    """One allocation (not step) row of ``sacct``.

    ``job_id``: as sacct prints it (``"12"``, ``"12_3"``, ``"12_[4-5%2]"``,
    ``"12+0"``), without any ``;cluster`` suffix, which goes to ``cluster``.
    ``job_id_raw``: Slurm's internal numeric id (differs for array tasks and
    het components). ``state``: raw (``"CANCELLED by 1000"``).
    ``exit_code``: ``"<status>:<signal>"``. Times: naive local time or
    ``None``; ``elapsed`` a :class:`timedelta`.
    """

    job_id: str
    job_id_raw: str
    state: str
    exit_code: str | None
    reason: str | None
    partition: str | None
    elapsed: timedelta | None
    submit: datetime | None
    start: datetime | None
    end: datetime | None
    node_list: str | None
    cluster: str | None
    name: str


@dataclass(frozen=True)
class Sacct(SlurmCommand[dict[str, SacctRow]]):
    """``sacct`` for job ids, or for job names, in one call.

    Give ``job_ids`` (looked up whenever they ran), or ``job_names`` with a
    ``start_time`` window (Slurm syntax: ``"now-7days"``,
    ``"2024-05-01T00:00"``; sacct's own default would be today 00:00).
    ``--allocations`` keeps step rows out; the parser still skips any.
    ``clusters``: ask that cluster (``-M``). Raises ``ValueError`` when
    neither or both are given, or on a bad id, name or cluster name.
    """

    job_ids: Collection[str] = ()
    job_names: Collection[str] = ()
    start_time: str = "now-7days"
    clusters: str | None = None

    FIELDS: ClassVar[tuple[str, ...]] = (
        "JobID", "JobIDRaw", "State", "ExitCode", "Partition", "Elapsed",
        "Submit", "Start", "End", "NodeList", "Cluster", "Reason", "JobName",
    )

    def __post_init__(self) -> None:
        if bool(self.job_ids) == bool(self.job_names):
            raise ValueError("give either job_ids or job_names")
        if self.job_ids:
            object.__setattr__(self, "job_ids", _job_id_list(self.job_ids))
        else:
            object.__setattr__(
                self, "job_names", tuple(sorted({validate_job_name(n) for n in self.job_names}))
            )
        if self.clusters is not None:
            validate_cluster_name(self.clusters)

    def argv(self) -> list[str]:
        argv = [
            "sacct",
            *_cluster_option(self.clusters),
            "--parsable2",
            "--noheader",
            "--allocations",
            f"--format={','.join(self.FIELDS)}",
        ]
        if self.job_ids:
            argv.append(f"--jobs={','.join(self.job_ids)}")
        else:
            argv += [f"--name={','.join(self.job_names)}", f"--starttime={self.start_time}"]
        return argv

    def parse(self, result: CommandResult) -> dict[str, SacctRow]:
        """Allocation rows keyed by ``job_id`` and also by ``job_id_raw``.

        An array task is ``"7000_3"`` to sacct but ``"7003"`` to whoever
        tracks it by its own id, so both keys lead to the same row (a het
        component ``"44+1"`` is also ``"45"``). Ids are matched whole, never
        by prefix; a display id wins over another row's raw id. Iterate
        ``set(rows.values())`` for each row once. ``.batch``/``.extern``/``.N``
        step rows are skipped, unknown ids are simply absent. Raises
        :class:`ExecutorError` (retryable when slurmdbd is unreachable).
        """
        if result.returncode != 0:
            _raise_for(result)
        rows: dict[str, SacctRow] = {}
        with _reading("sacct"):
            for line in result.stdout.splitlines():
                if not line.strip() or _is_cluster_header(line):
                    continue
                (job_id, raw_id, state, exit_code, partition, elapsed, submit, start, end,
                 nodes, cluster, reason, name) = _split_row(line, len(self.FIELDS))
                job_id, _, id_cluster = job_id.strip().partition(";")
                if "." in job_id:
                    continue
                rows[job_id] = SacctRow(
                    job_id=job_id,
                    job_id_raw=raw_id.strip().partition(";")[0].split(".", 1)[0],
                    state=state.strip(),
                    exit_code=_optional(exit_code),
                    reason=_optional(reason),
                    partition=_optional(partition),
                    elapsed=_field(parse_slurm_duration, elapsed, "sacct", job_id),
                    submit=_field(parse_slurm_datetime, submit, "sacct", job_id),
                    start=_field(parse_slurm_datetime, start, "sacct", job_id),
                    end=_field(parse_slurm_datetime, end, "sacct", job_id),
                    node_list=_optional(nodes),
                    cluster=_optional(id_cluster) or _optional(cluster),
                    name=name,
                )
        for row in list(rows.values()):
            if row.job_id_raw and row.job_id_raw != row.job_id:
                rows.setdefault(row.job_id_raw, row)
        return rows


# --------------------------------------------------------------------------- scancel


# scancel's complaints about jobs that are already gone: cancelling is
# idempotent for us, so these are not failures.
_SCANCEL_BENIGN = (
    "invalid job id specified",
    "job/step already completing or completed",
    "already completing or completed",
)


@dataclass(frozen=True)
class Scancel(SlurmCommand[None]):
    """``scancel`` of a set of job ids, in one call.

    ``clusters``: on that cluster (``-M``). Raises ``ValueError`` for an
    empty or malformed id set or cluster name.
    """

    job_ids: Collection[str]
    clusters: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "job_ids", _job_id_list(self.job_ids))
        if self.clusters is not None:
            validate_cluster_name(self.clusters)

    def argv(self) -> list[str]:
        return ["scancel", *_cluster_option(self.clusters), *self.job_ids]

    def parse(self, result: CommandResult) -> None:
        """Succeeds when every job is cancelled or already gone/finished.

        Raises :class:`ExecutorError` for any other ``scancel: error:`` line
        (e.g. permission denied) or an unexplained non-zero exit.
        """
        errors = [
            ln.strip()
            for ln in (result.stderr + "\n" + result.stdout).splitlines()
            if re.search(r"\berror:", ln, re.IGNORECASE)
        ]
        real = [ln for ln in errors if not any(b in ln.lower() for b in _SCANCEL_BENIGN)]
        if real:
            message = "; ".join(real)
            raise ExecutorError(message, retryable=_is_retryable(message))
        if result.returncode != 0 and not errors:
            _raise_for(result)


# --------------------------------------------------------------------------- scontrol ping


@dataclass(frozen=True)
class ScontrolPing(SlurmCommand[bool]):
    """``scontrol ping``: is a controller (primary or backup) answering?"""

    def argv(self) -> list[str]:
        return ["scontrol", "ping"]

    def parse(self, result: CommandResult) -> bool:
        """True when any line says ``Slurmctld(...) at <host> is UP``; never raises."""
        return any(
            re.search(r"^Slurmctld\(.*\) at \S+ is UP\b", line.strip())
            for line in result.stdout.splitlines()
        )


# --------------------------------------------------------------------------- sinfo


@dataclass(frozen=True)
class SinfoRow:
    """One ``sinfo`` line: the nodes of one partition that share one state.

    ``partition`` without sinfo's ``*``; ``is_default`` says whether it had
    one. ``available``: ``"up"``/``"down"``/``"drain"``/``"inact"``.
    ``time_limit``: ``None`` for ``infinite``. ``cpus``: per node (``"2"`` or
    a range like ``"2+"``). ``memory_mb``: per node, as printed
    (``"22900"``, ``"1000+"``). ``state``: long node state (``"idle"``,
    ``"mixed"``, ``"idle*"`` when not responding). ``reason``: why nodes
    are down/drained, if any.
    """

    partition: str
    is_default: bool
    available: str
    time_limit: timedelta | None
    node_count: int
    state: str
    node_list: str
    cpus: str
    memory_mb: str
    reason: str | None


@dataclass(frozen=True)
class Sinfo(SlurmCommand[list[SinfoRow]]):
    """``sinfo`` summary by partition and node state; ``partitions`` limits it."""

    partitions: Collection[str] = ()

    FORMAT: ClassVar[str] = "%P|%a|%l|%D|%T|%N|%c|%m|%E"
    _FIELDS: ClassVar[int] = 9

    def __post_init__(self) -> None:
        for name in self.partitions:
            if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
                raise ValueError(f"invalid partition name {name!r}")

    def argv(self) -> list[str]:
        argv = ["sinfo", "--noheader", f"--format={self.FORMAT}"]
        if self.partitions:
            argv.append(f"--partition={','.join(sorted(self.partitions))}")
        return argv

    def parse(self, result: CommandResult) -> list[SinfoRow]:
        """Rows in sinfo's order. Raises :class:`ExecutorError` on failure."""
        if result.returncode != 0:
            _raise_for(result)
        rows = []
        with _reading("sinfo"):
            for line in result.stdout.splitlines():
                if not line.strip():
                    continue
                partition, avail, limit, count, state, nodes, cpus, memory, reason = _split_row(
                    line, self._FIELDS
                )
                partition = partition.strip()
                limit = limit.strip()
                rows.append(
                    SinfoRow(
                        partition=partition.rstrip("*"),
                        is_default=partition.endswith("*"),
                        available=avail.strip(),
                        time_limit=None if limit == "infinite" else parse_slurm_duration(limit),
                        node_count=int(count),
                        state=state.strip(),
                        node_list=nodes.strip(),
                        cpus=cpus.strip(),
                        memory_mb=memory.strip(),
                        reason=_optional(reason) if reason.strip() != "none" else None,
                    )
                )
        return rows
