"""A small async-friendly circuit breaker, one per provider.

closed ──(``failure_threshold`` failures within ``window_seconds``)──▶ open
open ──(``open_seconds`` passed)──▶ half_open: up to ``half_open_probes`` calls let through
half_open ──(a probe succeeds)──▶ closed;  half_open ──(a probe fails)──▶ open again

Only failures that say something about the provider's health count (unavailable, timeout);
declines and invalid requests are answers, not failures. A failure the caller knows says nothing
about the provider (a timeout while our own event loop stalled, see ``_http``) is recorded with
``record_skipped(reason)``: counted in ``provider_breaker_skipped_failures_total``, not against the
provider. The clock is injectable for tests.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from payment_service.providers.metrics import BREAKER_OPENED, BREAKER_SKIPPED_FAILURES, BREAKER_STATE


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


_GAUGE = {BreakerState.closed: 0, BreakerState.half_open: 1, BreakerState.open: 2}


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        window_seconds: float = 30.0,
        open_seconds: float = 15.0,
        half_open_probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or half_open_probes < 1:
            raise ValueError("failure_threshold and half_open_probes must be >= 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.window_seconds = window_seconds
        self.open_seconds = open_seconds
        self.half_open_probes = half_open_probes
        self._clock = clock
        self._failures: deque[float] = deque()
        self._state = BreakerState.closed
        self._opened_at = 0.0
        self._probes_in_flight = 0
        BREAKER_STATE.labels(name).set(0)

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.open and self._clock() - self._opened_at >= self.open_seconds:
            self._set(BreakerState.half_open)
            self._probes_in_flight = 0
        return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open, reserves one probe slot (release with record_*)."""
        state = self.state
        if state is BreakerState.closed:
            return True
        if state is BreakerState.open:
            return False
        if self._probes_in_flight < self.half_open_probes:
            self._probes_in_flight += 1
            return True
        return False

    def record_success(self) -> None:
        if self._state is BreakerState.half_open:
            self._failures.clear()
            self._probes_in_flight = 0
            self._set(BreakerState.closed)

    def record_failure(self) -> None:
        now = self._clock()
        if self._state is BreakerState.half_open:
            self._trip(now)
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window_seconds:
            self._failures.popleft()
        if self._state is BreakerState.closed and len(self._failures) >= self.failure_threshold:
            self._trip(now)

    def record_skipped(self, reason: str) -> None:
        """A failure that proves nothing about the provider: not counted, the state stays as it is.

        A half-open probe's slot is freed so that another call can probe (a skipped probe must
        neither close the circuit, as a neutral answer would, nor hold its slot forever).
        """
        BREAKER_SKIPPED_FAILURES.labels(self.name, reason).inc()
        if self._state is BreakerState.half_open and self._probes_in_flight > 0:
            self._probes_in_flight -= 1

    def record_neutral(self) -> None:
        """A call that proved nothing (e.g. a decline): frees a half-open probe slot, closes the circuit."""
        self.record_success()

    def reset(self) -> None:
        self._failures.clear()
        self._probes_in_flight = 0
        self._set(BreakerState.closed)

    def _trip(self, now: float) -> None:
        self._opened_at = now
        self._failures.clear()
        self._probes_in_flight = 0
        self._set(BreakerState.open)
        BREAKER_OPENED.labels(self.name).inc()

    def _set(self, state: BreakerState) -> None:
        self._state = state
        BREAKER_STATE.labels(self.name).set(_GAUGE[state])
