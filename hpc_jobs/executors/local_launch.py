"""Detached launcher of one local batch job (used by :class:`LocalExecutor`).

``python -m hpc_jobs.executors.local_launch <entry> <work dir> <slots dir> <slots>``

The parent exits as soon as the child is detached (own session, stdio on the
work dir's log files). The child takes the first free one of ``slots`` lock
files, runs ``bash job.sbatch`` in the work dir and records the exit status
atomically in ``<entry>/exit``. Waiting jobs queue on one more lock, so they
start in order; the one at the head of the queue looks for a free slot every
0.2 s. Locks are ``flock`` locks, released by the kernel even when the child
is killed, so a crash never leaks a slot.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from hpc_jobs import workdir


@contextmanager
def _free_slot(slots_dir: Path, slots: int, entry: Path):
    """Hold the first free slot lock (FIFO among waiters); ``None`` if the job
    was cancelled while it waited."""
    with open(slots_dir / "queue.lock", "w") as queue:
        fcntl.flock(queue, fcntl.LOCK_EX)  # blocks in the kernel, in arrival order
        while True:
            for slot in range(slots):
                handle = open(slots_dir / f"slot-{slot}.lock", "w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                fcntl.flock(queue, fcntl.LOCK_UN)
                try:
                    yield handle
                finally:
                    handle.close()
                return
            if (entry / "cancelled").exists():
                fcntl.flock(queue, fcntl.LOCK_UN)
                yield None
                return
            time.sleep(0.2)


def _run_child(entry: Path, work_dir: Path, slots_dir: Path, slots: int) -> int:
    (entry / "pid").write_text(str(os.getpid()))
    slots_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _free_slot(slots_dir, slots, entry) as lock:
        if lock is None or (entry / "cancelled").exists():
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
