"""Scenario 5: the outbox relay.

* ``outbox_lag`` — under scenario 1's purchase load: every event created in the window, its lag
  ``published_at - created_at`` (``created_at`` is the writing transaction's start, ``published_at``
  the broker's acknowledgement, both on this machine's clock), and the relay's publish rate;
  the monitor's 250 ms samples of the backlog (count and age of the oldest unpublished event) are
  the chart's extra panel.
* ``relay_drain`` — the relay's own throughput: the worker is paused (SIGSTOP) while N wallet
  donations go through the API (each commits one outbox row with its ledger posting, in the
  request's transaction), then resumed (SIGCONT); the backlog's publication rate is the drain
  rate. Nothing is written into any table directly: the events come through the API.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.service import audit, loadgen
from benchmarks.service.drivers import ClosedLoopJob
from benchmarks.service.report import Goal, ScenarioResult, from_samples
from benchmarks.service.samples import OK, Sample
from benchmarks.service.scenarios import UNIFORM_STREAMERS, Context, monitor_series


async def lag_under(ctx: Context, purchase: ScenarioResult) -> ScenarioResult:
    start, end = purchase.started, purchase.started + ctx.plan.seconds
    events = await audit.outbox_events(ctx.stack.dsn, start, end)
    samples: list[Sample] = [(p, (p - c) * 1000, OK) for c, p in events if p is not None]
    result = from_samples(
        "outbox_lag",
        "Outbox lag under purchases",
        "5",
        samples,
        started=start,
        ended=max([end, *(s[0] for s in samples)]),
        baseline=ctx.baseline,
        measured=(start, end),
    )
    never = sum(1 for _, p in events if p is None)
    result.goals = [Goal("lag p99 ≤ 200 ms (notes P5)", result.latency.get("p99_ms", 0) <= 200 if samples else None)]
    result.details = {
        "events_created": len(events),
        "unpublished_after_settle": never,
        "summary": (
            f"{len(events):,} events created during the purchase run; rate = events published per second; "
            f"latency = per-event lag published_at − created_at; {never} still unpublished when read."
        ),
    }
    result.extra_series = {"outbox": monitor_series(ctx.monitor.window(start, result.ended), start).get("outbox")}
    return result


async def relay_drain(ctx: Context, posting_rate: float) -> ScenarioResult:
    plan = ctx.plan
    settled = await audit.settle(ctx.stack.dsn, seconds=30)
    processes = plan.load_processes
    jobs = [
        ClosedLoopJob(
            kind="posting",
            base=ctx.stack.base,
            tokens=ctx.donor_tokens[p::processes] or ctx.donor_tokens,
            connections=share,
            seconds=60.0 if not plan.smoke else 15.0,
            max_requests=n,
            streamers=UNIFORM_STREAMERS,
            seed=100 + p,
        )
        for p, (share, n) in enumerate(
            zip(
                loadgen.split(plan.connections, processes),
                loadgen.split(plan.drain_events, processes),
                strict=True,
            )
        )
    ]
    ctx.stack.suspend_worker()
    try:
        generated_from = time.time()
        parts = await asyncio.to_thread(loadgen.run_jobs, jobs)
        generated_to = time.time()
        backlog = await audit.unpublished(ctx.stack.dsn)
    finally:
        resumed = time.time()
        ctx.stack.resume_worker()
    remaining = backlog
    deadline = time.monotonic() + 120
    while remaining and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        remaining = await audit.unpublished(ctx.stack.dsn)
    drained = time.time()
    events = await audit.outbox_events(ctx.stack.dsn, generated_from, generated_to + 1)
    published = sorted(p for _, p in events if p is not None and p >= resumed)
    span = (published[-1] - resumed) if published else 0.0
    rate = len(published) / span if span > 0 else 0.0
    samples: list[Sample] = [(p, 0.0, OK) for p in published]
    result = from_samples(
        "relay_drain", "Outbox relay drain", "5", samples, started=resumed, ended=drained, baseline=ctx.baseline
    )
    result.rate = round(rate, 1)
    result.ratio_to_pgbench = round(rate / ctx.baseline.tps, 3) if ctx.baseline.tps else 0.0
    result.latency = {}
    result.goals = [Goal("≥ posting rate (notes P5)", rate >= posting_rate if published else None)]
    donations = sum(1 for p in parts for s in p["samples"] if s[2] == OK)
    result.details = {
        "settled_before": settled,
        "donations": donations,
        "backlog": backlog,
        "published_after_resume": len(published),
        "still_unpublished": remaining,
        "generation_s": round(generated_to - generated_from, 2),
        "drain_s": round(span, 2),
        "summary": (
            f"worker paused while {donations:,} wallet donations went through the API ({backlog:,} events "
            f"waiting), then resumed: the relay published them in {span:.2f} s = **{rate:,.0f} events/s** "
            f"(the posting scenario produced {posting_rate:,.0f}/s)."
        ),
    }
    result.extra_series = {"outbox": monitor_series(ctx.monitor.window(resumed, drained), resumed).get("outbox")}
    result.checks_ok = remaining == 0
    return result
