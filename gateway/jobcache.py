"""What the API shows of final jobs, kept per process.

A completed or failed job never changes again (:mod:`hpc_jobs.lifecycle`),
so once a read finds a job final, later reads of it (``GET /status``,
``GET /results``, the end of a ``wait=true``) need no query. The cache is a
least-recently-used map bounded by an estimate of its size in bytes
(``QCOS_FINAL_JOB_CACHE_MB`` per process, default 16; 0 disables it): a job
costs about 60 bytes per distinct outcome of its result, plus 1 KiB.
"""

from __future__ import annotations

import threading
from typing import Any

#: Estimated bytes of a cached job besides its counts, and per count.
_BASE_BYTES = 1024
_BYTES_PER_COUNT = 60


def _estimated_bytes(row: Any) -> int:
    result = row.result if isinstance(row.result, dict) else {}
    counts = result.get("counts")
    return _BASE_BYTES + _BYTES_PER_COUNT * (len(counts) if isinstance(counts, dict) else 0)


class FinalJobCache:
    """Rows of final jobs by job id (thread-safe). ``max_bytes`` 0 caches nothing."""

    def __init__(self, max_bytes: int) -> None:
        from cachetools import LRUCache

        self.max_bytes = max_bytes
        self._rows: LRUCache[str, Any] = LRUCache(maxsize=max(max_bytes, 1), getsizeof=_estimated_bytes)
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Any | None:
        """The cached row of ``job_id``, or ``None``."""
        if not self.max_bytes:
            return None
        with self._lock:
            return self._rows.get(job_id)

    def put(self, row: Any) -> None:
        """Keep ``row`` (a final job's row, with ``id`` and ``result``); one larger than the whole cache is skipped."""
        if not self.max_bytes or _estimated_bytes(row) > self.max_bytes:
            return
        with self._lock:
            self._rows[row.id] = row
