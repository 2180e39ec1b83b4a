"""Run driver jobs in separate load processes, so that the load generator never shares
the server's event loop, nor the main process's monitor.

:class:`LoadPool` starts ``len(jobs)`` processes; each gets the shared synchronisation objects
(a barrier across the pool, a stop event, counters) through the pool initializer and runs
:func:`benchmarks.service.drivers.run` on its job.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from benchmarks.service import drivers

_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["benchmarks.service.drivers", "benchmarks.service.watchers"])
"""Load processes are forked from a fresh server process that imported the drivers (not from this
process: it runs the monitor's event loop and holds connections)."""


class LoadPool:
    """``with LoadPool(n) as pool: futures = pool.submit_all(jobs)``; the barrier has n parties."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.barrier = _CTX.Barrier(processes)
        self.stop = _CTX.Event()
        self.ready = _CTX.Value("i", 0)
        self.progress = _CTX.Value("q", 0)
        self._pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=_CTX,
            initializer=drivers.install_sync,
            initargs=({"barrier": self.barrier, "stop": self.stop, "ready": self.ready, "progress": self.progress},),
        )

    def __enter__(self) -> LoadPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit_all(self, jobs: Sequence[object]) -> list[Future[dict[str, Any]]]:
        if len(jobs) != self.processes:
            raise ValueError("one job per load process (the barrier counts them)")
        return [self._pool.submit(drivers.run, job) for job in jobs]


def run_jobs(jobs: Sequence[object]) -> list[dict[str, Any]]:
    """Run one job per process, all released together at the barrier; blocks until all finish."""
    with LoadPool(len(jobs)) as pool:
        return [f.result() for f in pool.submit_all(jobs)]


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal integers."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
