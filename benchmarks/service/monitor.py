"""What the main process watches during the whole run, every ``interval`` (250 ms):

* ``/health/ready`` of the API: status code and latency (never shed by the overload guard);
* RSS of every process of the stack (psutil);
* the outbox: unpublished events and the age of the oldest (its own asyncpg connection);
* from the API's ``/metrics``: the YooKassa breaker state, requests in flight, requests shed, the
  event loop's lag (largest of the last second, of whichever API process answered).

Scenarios slice the samples by wall time (:meth:`Monitor.window`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

import asyncpg
import httpx

from benchmarks.service.stack import Stack

_METRIC = re.compile(
    r'^(provider_breaker_state\{provider="(\w+)"\}|http_requests_in_flight|http_requests_parked|http_requests_shed_total'
    r"|payment_event_loop_lag_seconds) (\S+)$"
)


def parse_metrics(text: str) -> dict[str, float]:
    """The few series the harness reads from the Prometheus text format."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match is None:
            continue
        name = f"breaker_{match.group(2)}" if match.group(2) else match.group(1)
        out[name] = float(match.group(3))
    return out


class Monitor:
    def __init__(self, stack: Stack, *, interval: float = 0.25) -> None:
        self.stack = stack
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Monitor:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def window(self, start: float, end: float) -> list[dict[str, Any]]:
        return [s for s in self.samples if start <= s["t"] < end]

    async def _run(self) -> None:
        conn: asyncpg.Connection | None = None
        async with httpx.AsyncClient(base_url=self.stack.base, trust_env=False, timeout=2.0) as http:
            try:
                while True:
                    tick = time.monotonic()
                    if conn is None or conn.is_closed():
                        with contextlib.suppress(OSError, asyncpg.PostgresError):
                            conn = await asyncpg.connect(self.stack.dsn)
                    sample = await self._sample(http, conn)
                    self.samples.append(sample)
                    await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - tick)))
            finally:
                if conn is not None:
                    await conn.close()

    async def _sample(self, http: httpx.AsyncClient, conn: asyncpg.Connection | None) -> dict[str, Any]:
        sample: dict[str, Any] = {"t": time.time()}

        async def ready() -> None:
            started = time.perf_counter()
            try:
                response = await http.get("/health/ready")
                sample["ready"] = response.status_code
            except httpx.HTTPError as exc:
                sample["ready"] = type(exc).__name__
            sample["ready_ms"] = round((time.perf_counter() - started) * 1000, 1)

        async def metrics() -> None:
            with contextlib.suppress(httpx.HTTPError):
                sample.update(parse_metrics((await http.get("/metrics")).text))

        async def outbox() -> None:
            if conn is None:
                return
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                row = await conn.fetchrow(
                    "SELECT count(*) AS n, extract(epoch FROM clock_timestamp() - min(created_at)) AS age "
                    "FROM outbox_events WHERE published_at IS NULL"
                )
                assert row is not None
                sample["outbox_pending"] = int(row["n"])
                sample["outbox_oldest_s"] = round(float(row["age"] or 0.0), 3)

        await asyncio.gather(ready(), metrics(), outbox())
        sample["rss"] = await asyncio.to_thread(self.stack.rss)
        return sample


def peak_rss_mb(samples: list[dict[str, Any]]) -> dict[str, float]:
    peaks: dict[str, int] = {}
    for s in samples:
        for role, rss in s.get("rss", {}).items():
            peaks[role] = max(peaks.get(role, 0), rss)
    return {role: round(v / 2**20, 1) for role, v in sorted(peaks.items())}


def readiness_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """How often /health/ready answered 200, and the intervals when it did not."""
    if not samples:
        return {"samples": 0}
    not_ready: list[list[float]] = []
    for s in samples:
        if s.get("ready") != 200:
            if not_ready and s["t"] - not_ready[-1][1] <= 0.6:
                not_ready[-1][1] = s["t"]
            else:
                not_ready.append([s["t"], s["t"]])
    latencies = sorted(float(s.get("ready_ms", 0.0)) for s in samples)
    return {
        "samples": len(samples),
        "ready_share": round(sum(1 for s in samples if s.get("ready") == 200) / len(samples), 4),
        "not_ready_intervals": [[round(a, 2), round(b, 2)] for a, b in not_ready],
        "answers": sorted({str(s.get("ready")) for s in samples}),
        "probe_p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }
