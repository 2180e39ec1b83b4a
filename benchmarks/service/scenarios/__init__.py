"""The scenarios of issue 7, each an async function ``(Context) -> ScenarioResult | list[...]``.

| issue | module | scenario names |
|---|---|---|
| 1 | :mod:`.throughput` | ``http_overhead``, ``purchase`` (with 5's lag), ``posting``, ``posting_hot`` |
| 5 | :mod:`.outbox` | ``relay_drain`` (and the outbox lag measured under ``purchase``) |
| 3 | :mod:`.hot_streamer` | ``hot_streamer`` (uniform and hot phases, WebSocket alerts) |
| 2 | :mod:`.concurrent` | ``concurrent`` (N clients at once, then the audit) |
| 4 | :mod:`.stress` | ``stress`` (ramp to 3× capacity, provider outage, recovery, audit) |
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

from benchmarks.baseline import Baseline
from benchmarks.service import loadgen
from benchmarks.service.drivers import OpenLoopJob
from benchmarks.service.monitor import Monitor
from benchmarks.service.stack import Stack

RUN_TAG = f"r{os.getpid()}"
"""Streamer ids carry the run's tag. Every run has its own database, but the alert channels live in
Redis (``donations:<db>:alerts:<streamer>``): two runs at once on one machine (a CI smoke beside a
benchmark, or a stack that outlived its run) would otherwise deliver each other's alerts, whose
positions collide with this run's."""
HOT_STREAMER = f"{RUN_TAG}-hot-streamer"
POSTING_HOT_STREAMER = f"{RUN_TAG}-hot-posting"
UNIFORM_STREAMERS = [f"{RUN_TAG}-streamer-{i}" for i in range(1000)]


@dataclass
class Plan:
    """Sizes and durations of a run (``--smoke`` shrinks them all)."""

    smoke: bool
    seconds: float
    baseline_seconds: float
    connections: int
    purchase_connections: int
    load_processes: int
    concurrent_clients: int
    concurrent_seconds: float
    ws_clients: int
    ws_hot_watchers: int
    hot_seconds: float
    stress_seconds: float
    stress_max: float
    drain_events: int
    decline_share: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        smoke = bool(args.smoke)

        def pick(name: str, smoke_value: Any) -> Any:
            value = getattr(args, name)
            return smoke_value if smoke and value is None else value if value is not None else DEFAULTS[name]

        return cls(
            smoke=smoke,
            seconds=pick("seconds", 2.0),
            baseline_seconds=pick("baseline_seconds", 2.0),
            connections=pick("connections", 8),
            purchase_connections=pick("purchase_connections", 4),
            load_processes=args.load_processes,
            concurrent_clients=pick("concurrent_clients", 100),
            concurrent_seconds=pick("concurrent_seconds", 60.0),
            ws_clients=pick("ws_clients", 40),
            ws_hot_watchers=pick("ws_hot_watchers", 10),
            hot_seconds=pick("hot_seconds", 3.0),
            stress_seconds=pick("stress_seconds", 6.0),
            stress_max=args.stress_max,
            drain_events=pick("drain_events", 200),
            decline_share=args.decline_share,
        )


DEFAULTS: dict[str, Any] = {
    "seconds": 30.0,
    "baseline_seconds": 30.0,
    "connections": 64,
    "purchase_connections": 32,
    "concurrent_clients": 5000,
    "concurrent_seconds": 300.0,
    "ws_clients": 1000,
    "ws_hot_watchers": 50,
    "hot_seconds": 30.0,
    "stress_seconds": 90.0,
    "drain_events": 3000,
}


@dataclass
class Context:
    plan: Plan
    stack: Stack
    monitor: Monitor
    baseline: Baseline
    buyer_tokens: list[str]
    donor_tokens: list[str]
    capacity: float = 0.0
    """Purchases per second measured by ``purchase`` (closed loop): the unit of scenarios 3 and 4."""
    idempotency_keys: dict[str, str | None] = field(default_factory=dict)
    """Every Idempotency-Key a purchase used → the payment id the client was given."""

    def remember(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            self.idempotency_keys[r["key"]] = r.get("payment_id")


async def donations_open_loop(
    ctx: Context, *, rate: float, streamers: list[str], seconds: float, tag: str, seed: int
) -> list[dict[str, Any]]:
    """Wallet donations arriving at ``rate``/s in all load processes for ``seconds`` (open loop),
    spread over ``streamers``; the load processes' results."""
    processes = ctx.plan.load_processes
    jobs = [
        OpenLoopJob(
            kind="donation",
            base=ctx.stack.base,
            tokens=ctx.donor_tokens[p::processes] or ctx.donor_tokens,
            profile=[(0.0, rate / processes)],
            seconds=seconds,
            streamers=streamers[p::processes] or streamers,
            tag=tag,
            grace=30.0,
            seed=seed + p,
        )
        for p in range(processes)
    ]
    return await asyncio.to_thread(loadgen.run_jobs, jobs)


def monitor_series(samples: list[dict[str, Any]], start: float) -> dict[str, Any]:
    """The monitor's samples of a window as chart series (seconds since ``start``)."""
    if not samples:
        return {}
    t = [round(s["t"] - start, 2) for s in samples]
    roles = sorted({r for s in samples for r in s.get("rss", {}) if r.startswith("api") or r == "worker"})
    return {
        "outbox": {
            "t": t,
            "pending": [s.get("outbox_pending", 0) for s in samples],
            "oldest_s": [s.get("outbox_oldest_s", 0.0) for s in samples],
        },
        "readiness": {
            "t": t,
            "ok": [1 if s.get("ready") == 200 else 0 for s in samples],
            "ms": [s.get("ready_ms", 0.0) for s in samples],
        },
        "rss_mb": {
            "t": t,
            "roles": {r: [round(s.get("rss", {}).get(r, 0) / 2**20, 1) for s in samples] for r in roles},
        },
        "breaker": {"t": t, "state": [s.get("breaker_yookassa", 0.0) for s in samples]},
    }
