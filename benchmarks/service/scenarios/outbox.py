"""Scenario 5: the outbox relay.

* ``outbox_lag`` — under scenario 1's purchase load (closed loop, the machine saturated): every
  event created in the window, its lag ``published_at - created_at`` (``created_at`` is the
  writing transaction's start, ``published_at`` the broker's acknowledgement, both on this
  machine's clock), and the relay's publish rate; the monitor's 250 ms samples of the backlog
  (count and age of the oldest unpublished event) are the chart's extra panel. At saturation the
  notes' floor applies: the lag must not grow (the oldest unpublished event stays under 1 s).
* ``outbox_lag_half`` — the notes' goal as defined there (P5: lag p99 ≤ 200 ms at half the posting
  rate): open-loop wallet donations at 0.5 × the measured posting rate, each committing one event;
  the lag of every event created in the window.
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
from benchmarks.service.scenarios import UNIFORM_STREAMERS, Context, donations_open_loop, monitor_series


async def _lag(
    ctx: Context, name: str, title: str, start: float, end: float
) -> tuple[ScenarioResult, list[tuple[float, float | None]], int]:
    """The lag of every event created in [start, end): the result (no goals yet), the events and
    how many of them were still unpublished."""
    events = await audit.outbox_events(ctx.stack.dsn, start, end)
    samples: list[Sample] = [(p, (p - c) * 1000, OK) for c, p in events if p is not None]
    result = from_samples(
        name,
        title,
        "5",
        samples,
        started=start,
        ended=max([end, *(s[0] for s in samples)]),
        baseline=ctx.baseline,
        measured=(start, end),
    )
    result.extra_series = {"outbox": monitor_series(ctx.monitor.window(start, result.ended), start).get("outbox")}
    return result, events, sum(1 for _, p in events if p is None)


async def lag_under(ctx: Context, purchase: ScenarioResult) -> ScenarioResult:
    start, end = purchase.started, purchase.started + ctx.plan.seconds
    result, events, never = await _lag(ctx, "outbox_lag", "Outbox lag under purchases", start, end)
    oldest = max((s.get("outbox_oldest_s", 0.0) for s in ctx.monitor.window(start, end)), default=0.0)
    result.goals = [
        Goal(
            "lag does not grow: oldest unpublished < 1 s (notes P5 floor)",
            oldest < 1.0 if result.latency.get("count") else None,
        )
    ]
    result.details = {
        "events_created": len(events),
        "unpublished_after_settle": never,
        "oldest_unpublished_max_s": oldest,
        "summary": (
            f"{len(events):,} events created during the purchase run (the machine saturated); rate = events "
            f"published per second; latency = per-event lag published_at − created_at; oldest unpublished event "
            f"at any 250 ms sample {oldest:.2f} s; {never} still unpublished when read."
        ),
    }
    return result


async def lag_at_half(ctx: Context, posting_rate: float) -> ScenarioResult:
    """Open-loop wallet donations at half the posting rate; the lag of their events."""
    plan = ctx.plan
    rate = max(2.0, 0.5 * posting_rate)
    parts = await donations_open_loop(
        ctx, rate=rate, streamers=UNIFORM_STREAMERS, seconds=plan.seconds, tag="lag", seed=400
    )
    start = min(p["started"] for p in parts)
    end = start + plan.seconds
    await audit.settle(ctx.stack.dsn, seconds=30)
    result, events, never = await _lag(
        ctx, "outbox_lag_half", "Outbox lag at half the posting rate (open loop)", start, end
    )
    donations = [s for part in parts for s in part["samples"]]
    ok = sum(1 for s in donations if s[2] == OK)
    result.goals = [
        Goal(
            "lag p99 ≤ 200 ms (notes P5)",
            result.latency.get("p99_ms", 0) <= 200 if result.latency.get("count") else None,
        )
    ]
    result.checks_ok = never == 0 and ok == len(donations)
    result.details = {
        "offered_per_s": round(rate, 1),
        "posting_rate": posting_rate,
        "donations": len(donations),
        "donations_ok": ok,
        "events_created": len(events),
        "unpublished_after_settle": never,
        "summary": (
            f"open-loop wallet donations at {rate:,.1f}/s (half the posting scenario's {posting_rate:,.1f}/s) for "
            f"{plan.seconds:.0f} s: {ok:,} of {len(donations):,} answered 201; {len(events):,} events, latency = "
            f"per-event lag published_at − created_at; {never} still unpublished when read."
        ),
    }
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
