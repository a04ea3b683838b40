"""``qcos-client``: the QCOS API from the shell, for researchers.

::

    qcos-client submit bell.qasm ghz.qasm --shots 2000   # one job, or a batch; waits, prints counts
    qcos-client submit circuits/ --json                   # every *.qasm of a directory, as JSON
    qcos-client submit bell.qasm --no-wait                # print the job id and return
    qcos-client status JOB_ID...   |  results JOB_ID...  |  cancel JOB_ID...
    qcos-client list --status completed --limit 50
    qcos-client batch BATCH_ID [--wait]
    qcos-client me | usage [--period 2024-01] | pricing | health

The gateway and key come from ``QCOS_URL`` and ``QCOS_API_KEY`` (or
``--url`` / ``--api-key``). Exit status: 0 on success, 1 when the gateway
refuses or cannot be reached or a job failed (one line on stderr), 2 for a
wrong command line, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qcos_sdk._version import __version__
from qcos_sdk.client import Client
from qcos_sdk.errors import APIError, CircuitInvalid, JobFailed, QCOSError
from qcos_sdk.models import JobInfo, JobResult

PROG = "qcos-client"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        with Client(args.url, args.api_key, timeout=args.request_timeout) as client:
            return args.command(client, args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (QCOSError, OSError, ValueError, TypeError) as exc:
        print(f"{PROG}: {_one_line(exc, getattr(args, 'files', None))}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="gateway URL (default: $QCOS_URL)")
    common.add_argument("--api-key", help="API key (default: $QCOS_API_KEY)")
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    common.add_argument("--request-timeout", type=float, default=30.0, metavar="S",
                        help="seconds one HTTP request may take (default 30)")
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--timeout", type=float, default=None, metavar="S",
                         help="give up waiting after S seconds (default: wait as long as it takes)")

    parser = argparse.ArgumentParser(prog=PROG, description="Run OpenQASM 2.0 circuits on a QCOS gateway.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    submit = commands.add_parser("submit", parents=[common, waiting], help="submit .qasm files or directories",
                                 description="Submit circuits: one file is one job, several (or a directory's "
                                             "*.qasm files) one batch. Waits and prints the counts.")
    submit.add_argument("paths", nargs="+", type=Path, metavar="PATH", help=".qasm file, or directory of them")
    submit.add_argument("--shots", type=int, default=1024, help="shots per circuit (default 1024)")
    submit.add_argument("--job-id", help="your own job id (one file only)")
    submit.add_argument("--no-wait", action="store_true", help="print the job ids and return at once")
    submit.add_argument("--no-progress", action="store_true", help="no progress bar while a batch runs")
    submit.set_defaults(command=_submit)

    status = commands.add_parser("status", parents=[common], help="state of jobs")
    status.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    status.set_defaults(command=_status)

    results = commands.add_parser("results", parents=[common, waiting], help="counts of jobs (waits for them)")
    results.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    results.add_argument("--no-wait", action="store_true", help="fail at once if a job is not finished")
    results.set_defaults(command=_results)

    cancel = commands.add_parser("cancel", parents=[common], help="cancel jobs")
    cancel.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    cancel.set_defaults(command=_cancel)

    listing = commands.add_parser("list", parents=[common], help="your jobs, newest first")
    listing.add_argument("--status", choices=("queued", "processing", "completed", "failed"))
    listing.add_argument("--limit", type=int, default=20, help="1-100 (default 20)")
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(command=_list)

    batch = commands.add_parser("batch", parents=[common, waiting], help="state of a batch")
    batch.add_argument("batch_id", metavar="BATCH_ID")
    batch.add_argument("--wait", action="store_true", help="wait until every job is final")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar while waiting")
    batch.set_defaults(command=_batch)

    for name, help_text, handler in (("me", "your account and limits", _me), ("pricing", "the tiers", _pricing),
                                     ("health", "the gateway's health", _health)):
        commands.add_parser(name, parents=[common], help=help_text).set_defaults(command=handler)
    usage = commands.add_parser("usage", parents=[common], help="your usage in a month")
    usage.add_argument("--period", metavar="YYYY-MM", help="default: the current UTC month")
    usage.set_defaults(command=_usage)
    return parser


# Commands: each returns the exit status.

def _submit(client: Client, args: argparse.Namespace) -> int:
    files = _qasm_files(args.paths)
    args.files = files
    if args.job_id is not None and len(files) != 1:
        raise ValueError("--job-id needs exactly one file")
    if len(files) == 1:
        job = client.execute(files[0], shots=args.shots, job_id=args.job_id)
        submitted = [(files[0], job.job_id)]
        batch_id = None
    else:
        batch = client.execute_batch(files, shots=args.shots)
        submitted = list(zip(files, batch.job_ids))
        batch_id = batch.batch_id
    if args.no_wait:
        rows = [{"file": str(path), "job_id": job_id, "status": "queued", "batch_id": batch_id}
                for path, job_id in submitted]
        _emit(args, rows, lambda: _table(["file", "job_id"], [[row["file"], row["job_id"]] for row in rows]))
        return 0
    if batch_id is None:
        outcomes: list[Any] = [_outcome(lambda: job.result(timeout=args.timeout))]
    else:
        outcomes = batch.results(timeout=args.timeout, progress=_progress(args), raise_on_failure=False)
    rows = [_result_row(job_id, outcome, file=str(path)) for (path, job_id), outcome in zip(submitted, outcomes)]
    _emit(args, rows, lambda: "\n\n".join(_result_block(row, title=row["file"]) for row in rows))
    return 1 if any(row["status"] == "failed" for row in rows) else 0


def _status(client: Client, args: argparse.Namespace) -> int:
    infos = [client.job(job_id).info() for job_id in args.job_ids]
    _emit(args, [dict(info.raw) for info in infos], lambda: _jobs_table(infos))
    return 0


def _results(client: Client, args: argparse.Namespace) -> int:
    timeout = 0 if args.no_wait else args.timeout
    rows = []
    for job_id in args.job_ids:
        job = client.job(job_id)
        rows.append(_result_row(job_id, _outcome(lambda: job.result(timeout=timeout))))
    _emit(args, rows, lambda: "\n\n".join(_result_block(row, title=row["job_id"]) for row in rows))
    return 1 if any(row["status"] == "failed" for row in rows) else 0


def _cancel(client: Client, args: argparse.Namespace) -> int:
    infos = [client.job(job_id).cancel() for job_id in args.job_ids]
    _emit(args, [dict(info.raw) for info in infos], lambda: _jobs_table(infos))
    return 0


def _list(client: Client, args: argparse.Namespace) -> int:
    page = client.jobs(status=args.status, limit=args.limit, offset=args.offset)
    summary = f"{len(page.jobs)} of {page.total} jobs (offset {page.offset})"
    _emit(args, {"jobs": [dict(job.raw) for job in page.jobs], "total": page.total, "limit": page.limit,
                 "offset": page.offset}, lambda: _jobs_table(page.jobs, shape=True) + "\n" + summary)
    return 0


def _batch(client: Client, args: argparse.Namespace) -> int:
    handle = client.batch(args.batch_id)
    info = handle.wait(args.timeout, progress=_progress(args)) if args.wait else handle.status()
    counts = ", ".join(f"{state} {info.counts.get(state, 0)}" for state in ("queued", "processing", "completed",
                                                                              "failed"))
    _emit(args, dict(info.raw), lambda: f"{info.batch_id}: {info.count} jobs, {counts}"
          f"{' (done)' if info.done else ''}\n" + _jobs_table(info.jobs))
    return 1 if info.done and info.counts.get("failed", 0) else 0


def _me(client: Client, args: argparse.Namespace) -> int:
    return _show(args, client.me())


def _usage(client: Client, args: argparse.Namespace) -> int:
    return _show(args, client.usage(args.period))


def _pricing(client: Client, args: argparse.Namespace) -> int:
    tiers = client.pricing()
    columns = ["name", "price_monthly", "daily_job_limit", "max_qubits", "max_shots"]
    _emit(args, tiers, lambda: _table(columns, [[tier.get(column) for column in columns] for tier in tiers["tiers"]],
                                      right=columns[1:]))
    return 0


def _health(client: Client, args: argparse.Namespace) -> int:
    return _show(args, client.health())


# Helpers.

def _qasm_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, with each directory replaced by its ``*.qasm`` files (sorted, not recursive)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(child for child in path.glob("*.qasm") if child.is_file())
            if not found:
                raise ValueError(f"{path}: no .qasm files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such file or directory")
    return files


def _outcome(wait) -> Any:
    try:
        return wait()
    except JobFailed as exc:
        return exc


def _result_row(job_id: str, outcome: Any, **extra: str) -> dict:
    if isinstance(outcome, JobFailed):
        return {**extra, "job_id": job_id, "status": "failed", "counts": None, "error": outcome.reason}
    assert isinstance(outcome, JobResult)
    return {**extra, "job_id": job_id, "status": "completed", "counts": outcome.counts, "error": None}


def _result_block(row: dict, *, title: str) -> str:
    if row["status"] == "failed":
        return f"{title}  job {row['job_id']}  failed: {row['error']}"
    counts = row["counts"]
    shots = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    table = _table(["outcome", "count", "probability"],
                   [[key, value, f"{value / shots:.4f}"] for key, value in ordered], right=("count", "probability"))
    return f"{title}  job {row['job_id']}  completed, {shots} shots\n{table}"


def _jobs_table(infos: Sequence[JobInfo], *, shape: bool = False) -> str:
    headers = ["job_id", "status"] + (["qubits", "shots"] if shape else []) + ["created_at", "completed_at", "error"]
    rows = []
    for info in infos:
        row = [info.job_id, info.status]
        if shape:
            row += [info.num_qubits, info.shots]
        row += [info.raw.get("created_at"), info.raw.get("completed_at"), info.error]
        rows.append(row)
    return _table(headers, rows, right=("qubits", "shots"))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[str] = ()) -> str:
    """Plain-text columns; the columns named in ``right`` (numbers) are right-aligned."""
    cells = [[str(header) for header in headers]] + [["" if cell is None else str(cell) for cell in row]
                                                      for row in rows]
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    aligned = [header in right for header in headers]
    return "\n".join("  ".join(cell.rjust(width) if align else cell.ljust(width)
                               for cell, width, align in zip(row, widths, aligned)).rstrip() for row in cells)


def _show(args: argparse.Namespace, body: dict) -> int:
    _emit(args, body, lambda: "\n".join(f"{key}: {json.dumps(value) if isinstance(value, (list, dict)) else value}"
                                        for key, value in body.items()))
    return 0


def _emit(args: argparse.Namespace, data: Any, text) -> None:
    print(json.dumps(data, indent=2) if args.json else text())


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _one_line(exc: BaseException, files: list[Path] | None) -> str:
    """The error as one line; a circuit error names its file."""
    if isinstance(exc, CircuitInvalid) and files:
        detail = exc.detail
        index = exc.index if exc.index is not None else (0 if len(files) == 1 else None)
        if index is not None and index < len(files):
            prefix = f"circuits[{index}]: "
            detail = f"{files[index]}: {detail[len(prefix):] if detail.startswith(prefix) else detail}"
        message = f"{exc.error_code}: {detail}"
    elif isinstance(exc, APIError):
        message = f"{exc.error_code}: {exc.detail}"
    else:
        message = str(exc) or exc.__class__.__name__
    return " ".join(message.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
