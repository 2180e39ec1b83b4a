"""The event-loop lag monitor, and how the provider HTTP layer uses it for the breaker.

The breaker tests feed an injected monitor by hand (a fake clock, stalls "recorded" while the
mocked provider is answering): no real stall, no timing. Only the monitor's own test blocks a real
loop, and asserts a lower bound far below the block.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator, MutableMapping
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from payment_service.providers import loop_lag
from payment_service.providers._http import ProviderHTTP
from payment_service.providers.breaker import BreakerState, CircuitBreaker
from payment_service.providers.errors import ProviderTimeout, ProviderUnavailable
from payment_service.providers.loop_lag import LoopLagMonitor
from payment_service.providers.settings import BreakerSettings, ProviderSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- the monitor ------------------------------------------------------------------------------


class TestMonitorSamples:
    def test_the_largest_lag_since_a_moment_is_reported(self) -> None:
        clock = Clock()
        m = LoopLagMonitor(clock=clock)
        m.record(due=1000.0, woke=1000.01)
        m.record(due=1000.06, woke=1000.46)  # a 0.4 s stall
        m.record(due=1000.51, woke=1000.52)
        clock.now = 1001.0

        assert m.max_lag_since(999.0) == pytest.approx(0.4)
        assert m.max_lag_since(1000.47) == pytest.approx(0.01)
        assert m.max_lag_since(1000.6) == 0.0

    def test_an_early_wake_up_is_no_lag(self) -> None:
        m = LoopLagMonitor(clock=Clock())

        assert m.record(due=1000.0, woke=999.99) == 0.0

    def test_samples_older_than_the_retention_are_forgotten(self) -> None:
        clock = Clock()
        m = LoopLagMonitor(retention=10.0, clock=clock)
        m.record(due=1000.0, woke=1002.0)
        m.record(due=1012.5, woke=1012.51)  # the first sample (woke at 1002) is now 10.51 s old
        clock.now = 1012.51

        assert m.max_lag_since(0.0) == pytest.approx(0.01)

    def test_only_samples_that_can_still_be_the_largest_are_kept(self) -> None:
        m = LoopLagMonitor(clock=Clock())
        for i, lag in enumerate([0.01, 0.3, 0.02, 0.2, 0.05, 0.001]):
            m.record(due=1000.0 + i, woke=1000.0 + i + lag)

        assert [lag for _, lag in m._samples] == pytest.approx([0.3, 0.2, 0.05, 0.001])
        assert m.max_lag_since(1002.0) == pytest.approx(0.2)


T = TypeVar("T")


def in_a_new_loop(body: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(body)


class TestMonitorPerLoop:
    def test_one_monitor_per_loop_started_on_first_use(self) -> None:
        async def body() -> tuple[LoopLagMonitor, LoopLagMonitor]:
            return loop_lag.monitor(), loop_lag.monitor()

        a1, a2 = in_a_new_loop(body())
        b1, _ = in_a_new_loop(body())

        assert a1 is a2
        assert b1 is not a1
        assert not a1.running  # the loop's shutdown cancelled its task

    def test_a_cancelled_monitor_is_replaced_and_reports_no_stall(self) -> None:
        async def body() -> tuple[LoopLagMonitor, LoopLagMonitor, float]:
            first = loop_lag.monitor()
            for task in asyncio.all_tasks():
                if task.get_name() == "event-loop-lag-monitor":
                    task.cancel()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return first, loop_lag.monitor(), first.max_lag_since(0.0)

        first, second, stale = in_a_new_loop(body())

        assert second is not first
        assert stale == 0.0

    async def test_a_blocked_loop_shows_as_lag(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(loop_lag, "GAUGE_WINDOW_SECONDS", 3600.0)  # the gauge: whatever the test's pace
        m = loop_lag.monitor()
        await asyncio.sleep(m.interval * 2)  # the sleeper is running
        since = m.now()

        asyncio.get_running_loop().call_soon(time.sleep, 0.3)  # blocks the loop for 0.3 s
        await asyncio.sleep(0)  # the blocking callback runs
        lag_right_after = m.max_lag_since(since)  # the sleeper may not have woken yet: its overdue counts
        await asyncio.sleep(m.interval * 2)  # it has woken and recorded the stall

        assert lag_right_after >= 0.2
        assert m.max_lag_since(since) >= 0.2
        assert value("payment_event_loop_lag_seconds") >= 0.2


# -- the breaker's bookkeeping in ProviderHTTP ------------------------------------------------

# connect 1 s, read 2 s, attempt deadline 4 s: loop-lag thresholds 0.25 s, 0.5 s and 1 s.
SETTINGS = ProviderSettings(
    base_url="http://p.test",
    connect_timeout_seconds=1.0,
    read_timeout_seconds=2.0,
    total_timeout_seconds=4.0,
    max_attempts=1,
    breaker=BreakerSettings(failure_threshold=2, window_seconds=60, open_seconds=30),
)

Answer = httpx.Response | Exception


class Provider:
    """A mocked provider; while it 'answers', the loop stalls for ``stall`` seconds (recorded)."""

    def __init__(self, answer: Answer, *, stall: float) -> None:
        self.clock = Clock()
        self.monitor = LoopLagMonitor(clock=self.clock)
        self.breaker = CircuitBreaker(
            "lagtest", failure_threshold=2, window_seconds=60, open_seconds=30, clock=self.clock
        )
        self.answer = answer
        self.stall = stall
        self.calls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.clock.now += 0.05
        self.monitor.record(due=self.clock.now, woke=self.clock.now + self.stall)
        self.clock.now += self.stall + 0.05
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def hanging_handler(self, request: httpx.Request) -> httpx.Response:
        self.handler(request)
        await asyncio.sleep(10)  # cut by the attempt deadline
        raise AssertionError("unreachable")

    def http(self, settings: ProviderSettings = SETTINGS, *, hang: bool = False) -> ProviderHTTP:
        return ProviderHTTP(
            "lagtest",
            settings,
            transport=httpx.MockTransport(self.hanging_handler if hang else self.handler),
            breaker=self.breaker,
            lag_monitor=lambda: self.monitor,
        )


def skipped() -> float:
    return value("provider_breaker_skipped_failures_total", provider="lagtest", reason="event_loop_lag")


async def fail(http: ProviderHTTP, times: int, error: type[Exception] = ProviderTimeout) -> None:
    for _ in range(times):
        with pytest.raises(error):
            await http.request("create", "POST", "/x", mutating=True, idempotent=False)


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs() as captured:
        yield captured


async def test_timeouts_during_a_loop_stall_do_not_open_the_breaker(logs: list[MutableMapping[str, Any]]) -> None:
    p = Provider(httpx.ReadTimeout("slow"), stall=0.6)  # read timeout 2 s: threshold 0.5 s
    skipped_before = skipped()
    timeouts_before = value("provider_calls_total", provider="lagtest", operation="create", outcome="timeout")

    await fail(p.http(), 3)  # the outcome stays "unknown" (ProviderTimeout), as without the rule

    assert p.breaker.state is BreakerState.closed
    assert skipped() == skipped_before + 3
    assert (
        value("provider_calls_total", provider="lagtest", operation="create", outcome="timeout") == timeouts_before + 3
    )
    not_counted = [e for e in logs if e["event"] == "provider_failure_not_counted"]
    assert len(not_counted) == 3
    assert not_counted[0]["loop_lag_seconds"] == pytest.approx(0.6)
    assert not_counted[0]["threshold_seconds"] == pytest.approx(0.5)


async def test_the_same_timeouts_with_a_small_stall_open_the_breaker() -> None:
    p = Provider(httpx.ReadTimeout("slow"), stall=0.4)
    skipped_before = skipped()

    await fail(p.http(), 2)

    assert p.breaker.state is BreakerState.open
    assert skipped() == skipped_before


async def test_a_stall_before_the_call_does_not_excuse_its_timeout() -> None:
    p = Provider(httpx.ReadTimeout("slow"), stall=0.0)
    p.monitor.record(due=p.clock.now - 5, woke=p.clock.now - 1)  # a 4 s stall that ended before the calls

    await fail(p.http(), 2)

    assert p.breaker.state is BreakerState.open


async def test_a_connect_timeout_is_measured_against_the_connect_timeout() -> None:
    excused = Provider(httpx.ConnectTimeout("no SYN-ACK read"), stall=0.3)  # connect 1 s: threshold 0.25 s
    counted = Provider(httpx.ConnectTimeout("no SYN-ACK read"), stall=0.2)

    await fail(excused.http(), 3, ProviderUnavailable)  # still "nothing sent": failover as before
    await fail(counted.http(), 2, ProviderUnavailable)

    assert excused.breaker.state is BreakerState.closed
    assert counted.breaker.state is BreakerState.open


async def test_the_attempt_deadline_is_measured_against_the_deadline() -> None:
    settings = SETTINGS.model_copy(update={"total_timeout_seconds": 0.05})  # threshold 12.5 ms
    excused = Provider(httpx.Response(200), stall=0.02)
    counted = Provider(httpx.Response(200), stall=0.01)

    for p in (excused, counted):
        await fail(p.http(settings, hang=True), 2)

    assert excused.breaker.state is BreakerState.closed
    assert counted.breaker.state is BreakerState.open


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(500), ProviderTimeout),
        (httpx.Response(502), ProviderTimeout),
        (httpx.Response(504), ProviderTimeout),
        (httpx.Response(503), ProviderUnavailable),
        (httpx.Response(429), ProviderUnavailable),
        (httpx.ConnectError("connection refused"), ProviderUnavailable),
        (httpx.RemoteProtocolError("peer closed connection"), ProviderTimeout),
    ],
    ids=["500", "502", "504", "503", "429", "refused", "dropped"],
)
async def test_answers_and_refusals_count_whatever_the_lag(answer: Answer, error: type[Exception]) -> None:
    p = Provider(answer, stall=30.0)
    skipped_before = skipped()

    await fail(p.http(), 2, error)

    assert p.breaker.state is BreakerState.open
    assert skipped() == skipped_before


async def test_a_half_open_probe_cut_by_a_stall_frees_its_slot_without_closing() -> None:
    p = Provider(httpx.Response(503), stall=0.0)
    http = p.http()
    await fail(http, 2, ProviderUnavailable)
    p.clock.now += 30
    assert p.breaker.state is BreakerState.half_open
    p.answer, p.stall = httpx.ReadTimeout("slow"), 0.6

    await fail(http, 1)

    assert p.breaker.state is BreakerState.half_open
    assert p.breaker.allow()  # the next call may probe


async def test_a_half_open_probe_timeout_without_stall_reopens() -> None:
    p = Provider(httpx.Response(503), stall=0.0)
    http = p.http()
    await fail(http, 2, ProviderUnavailable)
    p.clock.now += 30
    p.answer = httpx.ReadTimeout("slow")

    await fail(http, 1)

    assert p.breaker.state is BreakerState.open
