"""Event-loop lag: how late the process's own event loop runs what is due.

A sleeper task per event loop sleeps ``interval`` seconds (50 ms) again and again and records how
much later than asked it woke up. A healthy loop wakes it within a millisecond or two; a loop that
is saturated (too many ready callbacks per turn) or blocked (a synchronous call, a long GC pause,
the process not scheduled on a busy machine) wakes it late by the length of the stall.

The provider HTTP layer uses it to tell a provider that did not answer in time from a process that
could not read the answer in time (see ``_http.ProviderHTTP`` and ``providers/README.md``), and it
is exported as the gauge ``payment_event_loop_lag_seconds`` (the largest lag of the last second).

``monitor()`` returns the running loop's monitor, starting it on first use: one per loop (tests run
many loops). The API starts it at start-up so that the gauge is true before the first provider
call. Its cost is one timer wake-up every 50 ms.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable

import structlog

from payment_service.providers.metrics import EVENT_LOOP_LAG

log = structlog.get_logger(__name__)

INTERVAL_SECONDS = 0.05
RETENTION_SECONDS = 120.0  # longer than any provider call attempt (``total_timeout_seconds``)
GAUGE_WINDOW_SECONDS = 1.0


class LoopLagMonitor:
    """Lag samples of one event loop; the clock is injectable, ``record`` can be fed by tests.

    Only samples that can still be the largest are kept: a sample is dropped when a later one is at
    least as large, so the kept lags decrease from oldest to newest and the largest lag since any
    moment is the oldest kept sample after it.
    """

    def __init__(
        self,
        *,
        interval: float = INTERVAL_SECONDS,
        retention: float = RETENTION_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.retention = retention
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque()  # (woke at, lag), lags decreasing
        self._due: float | None = None  # when the sleeper should wake next, while it sleeps
        self._active = False  # its task exists and has not ended

    def now(self) -> float:
        return self._clock()

    @property
    def running(self) -> bool:
        return self._active

    def record(self, due: float, woke: float) -> float:
        """One sample: the sleeper was due at ``due`` and woke at ``woke``. Returns the lag."""
        lag = max(0.0, woke - due)
        samples = self._samples
        while samples and samples[-1][1] <= lag:
            samples.pop()
        samples.append((woke, lag))
        horizon = woke - self.retention
        while samples and samples[0][0] < horizon:
            samples.popleft()
        return lag

    def max_lag_since(self, since: float) -> float:
        """The largest lag of a stall that ended after ``since`` or is still going on now.

        A stall still going on is the sleeper's overdue wake-up: when the loop comes back from a
        stall it may run a timed-out call's callback before the sleeper's.
        """
        worst = 0.0
        for woke, lag in reversed(self._samples):
            if woke < since:
                break
            worst = lag
        if self._due is not None:
            worst = max(worst, self.now() - self._due)
        return worst

    def recent(self) -> float:
        """The largest lag of the last second (what the gauge shows)."""
        return self.max_lag_since(self.now() - GAUGE_WINDOW_SECONDS)

    async def run(self) -> None:
        """Sleep, record the lag, repeat (until cancelled; the loop's shutdown cancels it)."""
        while True:
            due = self.now() + self.interval
            self._due = due
            await asyncio.sleep(self.interval)
            self.record(due, self.now())
            EVENT_LOOP_LAG.set(self.recent())

    def start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        self._active = True
        task = loop.create_task(self.run(), name="event-loop-lag-monitor")
        task.add_done_callback(self._stopped)
        return task

    def _stopped(self, task: asyncio.Task[None]) -> None:
        # Also when cancelled before its first step: a stopped monitor must not report its last
        # due time as an ever-growing stall. monitor() starts a new one on the next call.
        self._active = False
        self._due = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("event_loop_lag_monitor_failed", error=repr(exc))


# One monitor per loop. The monitor holds no reference to its loop or task, so a closed loop's
# entry goes away with the loop; the running task is kept alive by _TASKS until it ends.
_MONITORS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopLagMonitor] = weakref.WeakKeyDictionary()
_TASKS: set[asyncio.Task[None]] = set()


def monitor() -> LoopLagMonitor:
    """The running loop's lag monitor, started on first use (and again if its task was cancelled)."""
    loop = asyncio.get_running_loop()
    found = _MONITORS.get(loop)
    if found is not None and found.running:
        return found
    found = LoopLagMonitor()
    _MONITORS[loop] = found
    task = found.start(loop)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return found
