from __future__ import annotations

import pytest

from payment_service.providers.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, **kw: float) -> CircuitBreaker:
    params = {"failure_threshold": 3, "window_seconds": 10.0, "open_seconds": 5.0, "half_open_probes": 1, **kw}
    return CircuitBreaker("test", clock=clock, **params)  # type: ignore[arg-type]


class TestClosed:
    def test_opens_after_threshold_failures_within_the_window(self, clock: Clock) -> None:
        b = make(clock)

        for _ in range(3):
            b.record_failure()

        assert b.state is BreakerState.open
        assert not b.allow()

    def test_failures_outside_the_window_are_forgotten(self, clock: Clock) -> None:
        b = make(clock)
        b.record_failure()
        b.record_failure()
        clock.now += 11

        b.record_failure()

        assert b.state is BreakerState.closed

    def test_successes_do_not_reset_the_window_count(self, clock: Clock) -> None:
        b = make(clock)
        b.record_failure()
        b.record_success()
        b.record_failure()
        b.record_failure()

        assert b.state is BreakerState.open


class TestHalfOpen:
    def test_after_open_seconds_one_probe_is_let_through(self, clock: Clock) -> None:
        b = make(clock)
        for _ in range(3):
            b.record_failure()
        clock.now += 5

        assert b.state is BreakerState.half_open
        assert b.allow()
        assert not b.allow()

    def test_successful_probe_closes(self, clock: Clock) -> None:
        b = make(clock)
        for _ in range(3):
            b.record_failure()
        clock.now += 5
        b.allow()

        b.record_success()

        assert b.state is BreakerState.closed
        assert b.allow()

    def test_failed_probe_reopens_for_another_period(self, clock: Clock) -> None:
        b = make(clock)
        for _ in range(3):
            b.record_failure()
        clock.now += 5
        b.allow()

        b.record_failure()

        assert b.state is BreakerState.open
        clock.now += 4.9
        assert b.state is BreakerState.open
        clock.now += 0.2
        assert b.state is BreakerState.half_open


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        CircuitBreaker("x", failure_threshold=0)
