"""Detached launcher of one local batch job (used by :class:`LocalExecutor`).

``python -m hpc_jobs.executors.local_launch <entry> <work dir> <slots dir> <slots>``

The parent exits as soon as the child is detached (own session, stdio on the
work dir's log files). The child waits for one of ``slots`` lock files, runs
``bash job.sbatch`` in the work dir and records the exit status atomically in
``<entry>/exit``. Locks are ``flock`` locks, released by the kernel even when
the child is killed, so a crash never leaks a slot.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from hpc_jobs import workdir


def _run_child(entry: Path, work_dir: Path, slots_dir: Path, slots: int) -> int:
    (entry / "pid").write_text(str(os.getpid()))
    slots_dir.mkdir(parents=True, exist_ok=True)
    # Spread jobs over the slots by id; a job waits on its slot's lock, which
    # blocks in the kernel instead of polling.
    slot = int(hashlib.sha256(entry.name.encode()).hexdigest(), 16) % slots
    with open(slots_dir / f"slot-{slot}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (entry / "cancelled").exists():
            workdir.write_atomically(entry / "exit", str(-signal.SIGTERM))
            return 0
        (entry / "started").touch()
        with open(work_dir / workdir.STDOUT_FILE, "ab") as out, open(work_dir / workdir.STDERR_FILE, "ab") as err:
            child = subprocess.Popen(
                ["bash", str(work_dir / workdir.SCRIPT_FILE)],
                cwd=work_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )

            def forward(signum, _frame):
                child.send_signal(signum)

            signal.signal(signal.SIGTERM, forward)
            status = child.wait()
        workdir.write_atomically(entry / "exit", str(status))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python -m hpc_jobs.executors.local_launch ENTRY WORK_DIR SLOTS_DIR SLOTS", file=sys.stderr)
        return 2
    entry, work_dir, slots_dir, slots = Path(argv[0]), Path(argv[1]), Path(argv[2]), int(argv[3])
    if os.fork() != 0:
        return 0
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        _run_child(entry, work_dir, slots_dir, slots)
    except BaseException as exc:  # noqa: BLE001 - the record is all that is left
        try:
            (work_dir / workdir.STDERR_FILE).open("a").write(f"qcos local launcher: {exc!r}\n")
            workdir.write_atomically(entry / "exit", "1")
        except OSError:
            pass
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
