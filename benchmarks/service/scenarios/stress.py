"""Scenario 4: ramp to 3× capacity with a provider outage in the middle, then back to the base load.

Open loop: purchase arrivals step 0.8× → 1.35× → 1.9× → 2.45× → 3× (``--stress-max``) the capacity
measured by scenario 1, then back to 0.8× (``BASE``). The base is below capacity on purpose: an
open-loop queue offered exactly its capacity has no steady state (its backlog and latency grow
without bound, seen as e2e latency climbing from 1 to 3 s within the first 1× window of earlier
runs), so a recovery ratio measured at 1× compared two transients and swung between 0.8 and 1.15
from run to run at the same commit. At 0.8× both windows are steady when the service is healthy,
and the final one is steady only if the overload's leftovers (retries, syncs, open payments)
drained. A shed create (503) is retried with the same key after
its Retry-After, at most 3 times (then the flow gives up, as a customer would). Outstanding flows
per load process are bounded; an arrival beyond the bound is counted as dropped by the generator.

The YooKassa outage is switched on and off through the emulator's outage switch
(``POST /_emulator/config`` ``fault_mode``/``fault_rate``, see emulators/README.md) while the load
is at 2.5×–3×, in two phases: a brownout first (``slow``: half of YooKassa's API calls answer after
``slow_seconds`` = 1.5 s), then the outage proper (``error_503`` on every call: creates, status
reads and webhook re-fetches alike, so the API's YooKassa breaker opens and its half-open probes
keep failing until the switch is off); ``fault_mode: null`` ends it. Before each switch the
emulator's counters (``GET /_emulator/outage``: API calls seen, faults injected) are read into the
phase's record, and the breaker state (from ``/metrics``) is logged with each switch.

Measured: shed answers and that every one had Retry-After, the providers' share of the payments
created per second (failover), the readiness timeline, the peak RSS of the API and the worker,
the throughput of the final base-load step against the first (recovery ratio), then the audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from typing import Any

import httpx

from benchmarks.service import audit, loadgen
from benchmarks.service.drivers import OpenLoopJob
from benchmarks.service.flows import PollPolicy
from benchmarks.service.monitor import peak_rss_mb, readiness_summary
from benchmarks.service.report import Goal, ScenarioResult, from_samples
from benchmarks.service.samples import DECLINED, OK, Sample, rate_in, summary
from benchmarks.service.scenarios import Context, monitor_series

OUTAGE = (0.42, 0.65)
"""The outage, as fractions of the scenario's duration."""
PRE = (0.08, 0.20)
POST = (0.85, 1.00)
"""The base-load windows compared for the recovery ratio (after the ramp's backlog drained)."""
BASE = 0.8
"""The load before and after the ramp, as a multiple of the measured capacity."""
SLOW_SECONDS = 1.5
BROWNOUT = 0.25
"""Share of the outage window that is the ``slow`` brownout; the rest answers 503."""
BROWNOUT_RATE = 0.5
"""Share of YooKassa's API calls slowed during the brownout."""
FAULT_SEED = 4


def profile(capacity: float, peak: float) -> list[tuple[float, float]]:
    """(fraction of the duration, multiple of capacity) steps."""
    steps = [BASE + (peak - BASE) * k / 4 for k in range(5)]
    starts = (0.0, 0.20, 0.30, 0.40, 0.50)
    return [*((s, capacity * m) for s, m in zip(starts, steps, strict=True)), (0.70, capacity * BASE)]


class Injector:
    """Switches YooKassa's outage on at ``start`` (a ``slow`` brownout, then ``error_503`` from
    ``errors_from``) and off at ``end`` (wall times); its records give seconds since ``origin``
    (the scenario's start)."""

    def __init__(self, ctx: Context, start: float, end: float, *, origin: float) -> None:
        self.ctx = ctx
        self.start = start
        self.end = end
        self.origin = origin
        self.errors_from = start + BROWNOUT * (end - start)
        self.injected: Counter[str] = Counter()
        """Faults the emulator injected, by mode (its own counters)."""
        self.phases: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        self.residual: list[str] = []
        """Outcomes still queued on the emulator afterwards (the switch queues none: expected empty)."""
        self.after: dict[str, Any] = {}
        """The emulator's outage state once switched off (``fault_mode`` None)."""

    def _breaker(self) -> float:
        samples = self.ctx.monitor.samples
        return float(samples[-1].get("breaker_yookassa", 0.0)) if samples else 0.0

    async def run(self) -> None:
        base = self.ctx.stack.emulator_url("yookassa")
        # Generous timeout: under the 3x ramp the emulator itself is busy and its control endpoint
        # answers late; a control call that fails is recorded, it must not abort the whole run.
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=30) as http:
            current: dict[str, Any] | None = None

            async def switch(**changes: Any) -> None:
                """Close the running phase with the emulator's counters, then apply ``changes``."""
                nonlocal current
                now = round(time.time() - self.origin, 2)
                if current is not None:
                    counters = (await http.get("/_emulator/outage")).raise_for_status().json()
                    self.injected.update(counters["faults"])
                    self.phases.append(
                        {**current, "to_s": now, "calls": counters["calls"], "faults": counters["faults"]}
                    )
                response = await http.post("/_emulator/config", json=changes)
                response.raise_for_status()
                mode = changes.get("fault_mode")
                current = None if mode is None else {"mode": mode, "rate": changes.get("fault_rate"), "from_s": now}
                self.log.append({"t": now, "breaker": self._breaker(), "set": changes})

            await http.post("/_emulator/config", json={"slow_seconds": SLOW_SECONDS})
            await http.delete("/_emulator/next-outcome")  # the switch is the only fault source
            await asyncio.sleep(max(0.0, self.start - time.time()))
            try:
                await switch(fault_mode="slow", fault_rate=BROWNOUT_RATE, fault_seed=FAULT_SEED)
                await asyncio.sleep(max(0.0, self.errors_from - time.time()))
                await switch(fault_mode="error_503", fault_rate=1.0)
                await asyncio.sleep(max(0.0, self.end - time.time()))
            except httpx.HTTPError as exc:  # reported with the scenario; the outage is ended below
                self.log.append({"t": round(time.time() - self.origin, 2), "error": repr(exc)})
                await asyncio.sleep(max(0.0, self.end - time.time()))
            finally:
                try:
                    await switch(fault_mode=None, slow_seconds=1.0)
                except httpx.HTTPError:  # the phase's counters are lost, but the outage must end
                    with contextlib.suppress(httpx.HTTPError):
                        await http.post("/_emulator/config", json={"fault_mode": None, "slow_seconds": 1.0})
                with contextlib.suppress(httpx.HTTPError):
                    self.after = (await http.get("/_emulator/outage")).raise_for_status().json()
                    queued = await http.post("/_emulator/next-outcome", json={"outcome": "error_503", "count": 0})
                    self.residual = list(queued.raise_for_status().json()["queued"])


async def stress(ctx: Context) -> ScenarioResult:
    plan = ctx.plan
    seconds = plan.stress_seconds
    capacity = max(2.0, ctx.capacity)
    steps = profile(capacity, plan.stress_max)
    processes = plan.load_processes
    grace = 15.0 if plan.smoke else 60.0
    start_at = time.time() + (2.0 if plan.smoke else 3.0)  # the load processes are forked meanwhile
    jobs = [
        OpenLoopJob(
            kind="purchase",
            base=ctx.stack.base,
            tokens=ctx.buyer_tokens[p::processes] or ctx.buyer_tokens,
            profile=[(f * seconds, rate / processes) for f, rate in steps],
            seconds=seconds,
            start_at=start_at,
            max_outstanding=1500,
            max_retries=3,
            decline_share=plan.decline_share,
            poll=PollPolicy(0.05, 1.5, 1.0),
            grace=grace,
            seed=400 + p,
        )
        for p in range(processes)
    ]
    outage = (start_at + OUTAGE[0] * seconds, start_at + OUTAGE[1] * seconds)
    injector = Injector(ctx, *outage, origin=start_at)
    inject = asyncio.create_task(injector.run())
    try:
        parts = await asyncio.to_thread(loadgen.run_jobs, jobs)
    finally:
        if not inject.done():
            inject.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await inject
    records = [r for p in parts for r in p["records"]]
    ctx.remember(records)
    samples: list[Sample] = [s for p in parts for s in p["samples"]]
    ended = max([start_at + seconds, *(s[0] for s in samples)])
    result = from_samples(
        "stress", "Stress ramp + YooKassa outage", "4", samples, started=start_at, ended=ended, baseline=ctx.baseline
    )
    window = ctx.monitor.window(start_at - 1, ended)
    settled = await audit.settle(ctx.stack.dsn, seconds=60)
    books = await audit.books(ctx.stack.dsn)
    reconciliation = await audit.reconcile(ctx.stack, wait_seconds=20 if plan.smoke else 60)
    pre = rate_in(samples, start_at + PRE[0] * seconds, start_at + PRE[1] * seconds)
    post = rate_in(samples, start_at + POST[0] * seconds, start_at + POST[1] * seconds)
    recovery = post / pre if pre else 0.0
    outcomes = Counter(r["outcome"] for r in records)
    dropped = sum(1 for s in samples if s[2] == "dropped")
    sheds = sum(r["sheds"] + r["poll_sheds"] for r in records)
    no_retry_after = sum(r["sheds_without_retry_after"] for r in records)
    shares, during = _providers(records, start_at, ended, outage)
    _, during_503 = _providers(records, start_at, ended, (injector.errors_from, outage[1]))
    readiness = readiness_summary(window)
    rss = peak_rss_mb(window)
    rss_start = {k: round(v / 2**20, 1) for k, v in (window[0].get("rss", {}) if window else {}).items()}
    e2e_pre = summary(
        [s[1] for s in samples if s[2] == OK and start_at + PRE[0] * seconds <= s[0] < start_at + PRE[1] * seconds]
    )
    e2e_post = summary([s[1] for s in samples if s[2] == OK and start_at + POST[0] * seconds <= s[0]])
    result.rate = round(post, 1)
    result.ratio_to_pgbench = round(post / ctx.baseline.tps, 3) if ctx.baseline.tps else 0.0
    failed_over = during_503.get("failover_share", 0.0)
    result.goals = [
        Goal("every 503 had Retry-After", no_retry_after == 0),
        Goal("failover during the 503 phase", failed_over > 0),
        Goal("readiness 200 throughout", readiness.get("ready_share", 0) == 1.0),
        Goal("recovery ≥ 0.9", recovery >= 0.9 if pre else None),
        Goal("audit", books["ok"] and reconciliation["ok"]),
    ]
    result.checks_ok = no_retry_after == 0 and books["ok"] and reconciliation["ok"]
    result.details = {
        "capacity": capacity,
        "profile": [(round(f * seconds, 1), round(r, 1)) for f, r in steps],
        "outage_s": [round(outage[0] - start_at, 1), round(outage[1] - start_at, 1)],
        "outage_503_from_s": round(injector.errors_from - start_at, 1),
        "outage_phases": injector.phases,
        "outcomes_injected": dict(injector.injected),
        "outage_after": injector.after,
        "residual_queue": injector.residual,
        "injector_log": injector.log[:40],
        "arrivals": sum(p["arrivals"] for p in parts),
        "outcomes": dict(outcomes),
        "dropped_by_generator": dropped,
        "sheds_503": sheds,
        "sheds_without_retry_after": no_retry_after,
        "gave_up_after_503s": outcomes.get("gave_up", 0),
        "providers_during_outage": during,
        "providers_during_503": during_503,
        "pre_rate": round(pre, 1),
        "post_rate": round(post, 1),
        "recovery_ratio": round(recovery, 3),
        "e2e_pre": e2e_pre,
        "e2e_post": e2e_post,
        "readiness": readiness,
        "rss_start_mb": rss_start,
        "rss_peak_mb": rss,
        "generator_lateness_p99_ms": max(
            (sorted(p["lateness_ms"])[int(0.99 * (len(p["lateness_ms"]) - 1))] for p in parts if p["lateness_ms"]),
            default=0.0,
        ),
        "settled": settled,
        "audit": {"books": books, "reconciliation": reconciliation},
        "summary": (
            f"capacity {capacity:,.1f}/s, offered up to {plan.stress_max:g}× for {seconds:g} s, YooKassa slow "
            f"({BROWNOUT_RATE:.0%} of calls, {SLOW_SECONDS:g} s) {outage[0] - start_at:.1f}–"
            f"{injector.errors_from - start_at:.1f} s, then answering 503 to every call until "
            f"{outage[1] - start_at:.1f} s ({dict(injector.injected)} faults injected in "
            f"{sum(p['calls'] for p in injector.phases):,} API calls). {outcomes.get(OK, 0):,} succeeded, "
            f"{outcomes.get(DECLINED, 0):,} declined as planned, {sheds:,} answers 503 ({no_retry_after} without "
            f"Retry-After), {outcomes.get('gave_up', 0):,} flows gave up after 3 retries, {dropped:,} arrivals dropped "
            f"by the generator's bound. During the 503 phase {failed_over:.0%} of new payments went to another "
            f"provider ({during.get('failover_share', 0.0):.0%} over the whole outage). Readiness 200 in {readiness.get('ready_share', 0):.1%} of probes. Peak RSS "
            + ", ".join(f"{k} {v} MiB" for k, v in rss.items() if k.startswith("api") or k == "worker")
            + f". Recovery: **{recovery:.2f}** ({post:,.1f}/s in the last {BASE:g}× window vs {pre:,.1f}/s in the first; "
            f"e2e p99 {e2e_post['p99_ms']} vs {e2e_pre['p99_ms']} ms). Audit: books {books['ok']}, providers "
            f"{reconciliation['ok']}."
        ),
    }
    series = monitor_series(window, start_at)
    result.extra_series = {
        "offered": {
            "t": [round(f * seconds, 2) for f, _ in steps] + [seconds],
            "rate": [r for _, r in steps] + [steps[-1][1]],
        },
        "providers": shares,
        "readiness": series.get("readiness"),
        "rss_mb": series.get("rss_mb"),
        "breaker": series.get("breaker"),
        "outage": [outage[0] - start_at, outage[1] - start_at],
        "marks": [[injector.errors_from - start_at, " 503"], [POST[0] * seconds, " recovery window"]],
    }
    return result


def _providers(
    records: list[dict[str, Any]], start: float, end: float, outage: tuple[float, float]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Share of each provider among the payments created per second, and during the outage."""
    seconds = max(1, int(end - start) + 1)
    per: dict[str, list[int]] = defaultdict(lambda: [0] * seconds)
    totals = [0] * seconds
    during: Counter[str] = Counter()
    for r in records:
        created, provider = r.get("t_created"), r.get("provider")
        if created is None or provider is None:
            continue
        i = int(created - start)
        if 0 <= i < seconds:
            per[provider][i] += 1
            totals[i] += 1
        if outage[0] <= created < outage[1]:
            during[provider] += 1
    share = {
        p: [round(v / t, 3) if t else 0.0 for v, t in zip(values, totals, strict=True)] for p, values in per.items()
    }
    total = sum(during.values())
    return (
        {"t": list(range(seconds)), "share": share},
        {
            "created": total,
            "by_provider": dict(during),
            "failover_share": round(1 - during.get("yookassa", 0) / total, 3) if total else 0.0,
        },
    )
