"""The run: baseline, stack, scenarios in order, final audit, report, charts, docs."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.baseline import pgbench
from benchmarks.service import audit, charts, report
from benchmarks.service.monitor import Monitor
from benchmarks.service.report import ScenarioResult
from benchmarks.service.scenarios import Context, Plan, concurrent, hot_streamer, outbox, stress, throughput
from benchmarks.service.stack import Stack

SCENARIOS = (
    "http_overhead",
    "purchase",
    "posting",
    "posting_hot",
    "outbox_lag_half",
    "relay_drain",
    "hot_streamer",
    "concurrent",
    "stress",
)
BUYERS = 5000
"""Distinct buyers: one per client of the 5000-client scenario, as in life (a user does not run
dozens of checkouts at once; the API caps one user's waiting long-polls at 20 per process)."""
DONOR_RUBLES = 50_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from benchmarks.service import __doc__ as doc

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.service", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dsn", default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument(
        "--smoke", action="store_true", help="tiny counts, a few seconds each: proves the harness works"
    )
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    parser.add_argument("--seconds", type=float, help="closed-loop scenarios (default 30)")
    parser.add_argument("--baseline-seconds", type=float, help="pgbench run (default 30)")
    parser.add_argument("--connections", type=int, help="http_overhead and posting connections (default 64)")
    parser.add_argument("--purchase-connections", type=int, help="purchase connections (default 32)")
    parser.add_argument("--load-processes", type=int, default=2, help="processes per load generator (default 2)")
    parser.add_argument(
        "--api-processes",
        type=int,
        default=None,
        help="API processes of the stack (dev --api-processes; default: one per core, as a deployment on this box "
        "would; 1 for --smoke, which runs beside the test suite and must not take its database connections)",
    )
    parser.add_argument("--concurrent-clients", type=int, help="scenario 2's clients (default 5000)")
    parser.add_argument(
        "--concurrent-seconds",
        type=float,
        help="scenario 2's bound per client (default 300; at least 2.5 × clients ÷ the measured purchase capacity)",
    )
    parser.add_argument("--ws-clients", type=int, help="scenario 3's WebSocket clients (default 1000)")
    parser.add_argument("--ws-hot-watchers", type=int, help="of them, on the hot streamer (default 50)")
    parser.add_argument("--hot-seconds", type=float, help="each phase of scenario 3 (default 30)")
    parser.add_argument("--stress-seconds", type=float, help="scenario 4's ramp (default 90)")
    parser.add_argument("--stress-max", type=float, default=3.0, help="peak multiple of capacity (default 3)")
    parser.add_argument("--drain-events", type=int, help="events of the relay-drain measurement (default 3000)")
    parser.add_argument("--decline-share", type=float, default=0.02, help="declined payments in scenarios 2 and 4")
    parser.add_argument("--capacity", type=float, help="purchases/s when 'purchase' is not run (--only)")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/performance.md")
    return parser.parse_args(argv)


def _selected(args: argparse.Namespace) -> list[str]:
    if not args.only:
        return list(SCENARIOS)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return [s for s in SCENARIOS if s in wanted]


async def _scenarios(ctx: Context, names: list[str]) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    by_name: dict[str, ScenarioResult] = {}

    async def purchase_and_lag() -> list[ScenarioResult]:
        purchase = await throughput.purchase(ctx)
        return [purchase, await outbox.lag_under(ctx, purchase)]

    async def lag_at_half() -> list[ScenarioResult]:
        posting = by_name.get("posting")
        return [await outbox.lag_at_half(ctx, posting.rate if posting else 2 * ctx.capacity)]

    async def drain() -> list[ScenarioResult]:
        posting = by_name.get("posting")
        return [await outbox.relay_drain(ctx, posting.rate if posting else 0.0)]

    steps: dict[str, Callable[[], Awaitable[list[ScenarioResult]]]] = {
        "http_overhead": lambda: _one(throughput.http_overhead(ctx)),
        "purchase": purchase_and_lag,
        "posting": lambda: _one(throughput.posting(ctx, hot=False)),
        "posting_hot": lambda: _one(throughput.posting(ctx, hot=True)),
        "outbox_lag_half": lag_at_half,
        "relay_drain": drain,
        "hot_streamer": lambda: _one(hot_streamer.hot_streamer(ctx)),
        "concurrent": lambda: _one(concurrent.concurrent(ctx)),
        "stress": lambda: _one(stress.stress(ctx)),
    }
    for i, name in enumerate(names):
        if i:
            waited, idle = await _quiesce(ctx, 5.0 if ctx.plan.smoke else 90.0)
            print(f"scenario {name} (after {waited:.1f} s of quiet: {idle}) ...", flush=True)
        else:
            print(f"scenario {name} ...", flush=True)
        await audit.analyze(ctx.stack.dsn)
        began = time.monotonic()
        produced = await steps[name]()
        print(f"  ({time.monotonic() - began:.1f} s)", flush=True)
        for result in produced:
            results.append(result)
            by_name[result.name] = result
            goals = "; ".join(f"{g.text}: {g.met}" for g in result.goals)
            print(
                f"  {result.name}: {result.rate:,.1f}/s ({result.ratio_to_pgbench:.3f} a), "
                f"p99 {result.latency.get('p99_ms', '—')} ms, checks {result.checks_ok}; {goals}",
                flush=True,
            )
    return results


async def _quiesce(ctx: Context, bound: float) -> tuple[float, bool]:
    """Let the previous scenario's leftovers finish (requests still in flight in the API, events not
    yet published) before the next one starts, so that it does not inherit a backlog; bounded."""
    began = time.monotonic()
    while time.monotonic() - began < bound:
        recent = ctx.monitor.samples[-2:]
        if len(recent) == 2 and all(
            s.get("http_requests_in_flight", 1) <= 1
            and s.get("http_requests_parked", 0) == 0
            and s.get("outbox_pending", 1) == 0
            for s in recent
        ):
            return time.monotonic() - began, True
        await asyncio.sleep(0.25)
    return time.monotonic() - began, False


async def _one(coro: Awaitable[ScenarioResult]) -> list[ScenarioResult]:
    return [await coro]


async def _baseline_and_stack(args: argparse.Namespace, plan: Plan, stack: Stack) -> Any:
    """pgbench first, on a quiet server, then the stack; a smoke run (whose figures mean nothing)
    does both at once to stay within CI's time."""
    print(f"baseline: pgbench TPC-B for {plan.baseline_seconds:g} s, then the stack ...", flush=True)
    began = time.monotonic()
    measure = asyncio.to_thread(pgbench, args.dsn, seconds=plan.baseline_seconds)
    if plan.smoke:
        baseline, _ = await asyncio.gather(measure, stack.start())
    else:
        baseline = await measure
        print(f"  a = {baseline.tps:,.0f} TPS", flush=True)
        await stack.start()
    print(f"  a = {baseline.tps:,.0f} TPS; stack ready after {time.monotonic() - began:.1f} s", flush=True)
    return baseline


async def main(args: argparse.Namespace) -> int:
    plan = Plan.from_args(args)
    names = _selected(args)
    began = time.time()
    env = report.environment()
    if args.api_processes is None:
        args.api_processes = 1 if args.smoke else (os.cpu_count() or 1)
    # the smoke run shares Postgres' max_connections with the test suite running beside it
    stack = Stack(args.dsn, args.redis, api_processes=args.api_processes, pool_size=8 if args.smoke else None)
    results: list[ScenarioResult] = []
    final: dict[str, Any] = {}
    monitor_samples: list[dict[str, Any]] = []
    try:
        baseline = await _baseline_and_stack(args, plan, stack)
        database = await audit.durability(stack.dsn)
        if database["fsync"] != "on" or database["synchronous_commit"] != "on":
            print(f"refusing to measure: durability is weakened ({database})", file=sys.stderr)
            return 2
        donors = [f"bench-donor-{i}" for i in range(max(2 * plan.connections, 100))]
        await stack.fund(donors, rubles=DONOR_RUBLES)
        async with Monitor(stack) as monitor:
            ctx = Context(
                plan=plan,
                stack=stack,
                monitor=monitor,
                baseline=baseline,
                buyer_tokens=[stack.token(f"bench-buyer-{i}") for i in range(BUYERS)],
                donor_tokens=[stack.token(d) for d in donors],
                capacity=args.capacity or 0.0,
            )
            results = await _scenarios(ctx, names)
            print("final audit ...", flush=True)
            final["settled"] = await audit.settle(stack.dsn, seconds=60)
            final["books"] = await audit.books(stack.dsn)
            final["reconciliation"] = await audit.reconcile(stack, wait_seconds=20 if plan.smoke else 60)
            final["idempotency"] = await audit.idempotency(stack.dsn, ctx.idempotency_keys)
            monitor_samples = monitor.samples
    finally:
        await stack.stop()
    return _report(args, plan, names, began, env, baseline, database, results, final, monitor_samples)


def _report(
    args: argparse.Namespace,
    plan: Plan,
    names: list[str],
    began: float,
    env: dict[str, Any],
    baseline: Any,
    database: dict[str, str],
    results: list[ScenarioResult],
    final: dict[str, Any],
    monitor_samples: list[dict[str, Any]],
) -> int:
    audits_ok = all(final[k]["ok"] for k in ("books", "reconciliation", "idempotency"))
    books, rec, keys = final["books"], final["reconciliation"], final["idempotency"]
    audit_summary = (
        f"{books['payments']:,} payments {books['by_status']}; {books['doubled_or_wrong']} doubled or wrong, ledger "
        f"balanced: {not books['unbalanced_currencies']}, events unpublished after settling: "
        f"{books['unpublished_events']}; providers' truth: {rec['provider_charges']:,} charges, {rec['problems']} "
        f"mismatches, {rec['awaiting_sync']} charged but still open after {rec['waited_s']:g} s (awaiting the status "
        f"sync), {rec.get('booked_for_refund', 0)} charged on a provider payment the service booked for a refund; "
        f"Idempotency-Keys: {keys['keys']:,}, {keys['problems']} with other than the one payment the client was "
        f"told about ({keys['payment_behind_an_error_answer']:,} payments behind an error answer). "
        f"**{'All audits passed' if audits_ok else 'AUDIT FAILED'}.**"
    )
    full = not plan.smoke and names == list(SCENARIOS)
    directory = report.RESULTS / ("smoke" if plan.smoke else "full" if full else "partial")
    pictures = charts.render_all(results, directory)
    links = {name: os.path.relpath(path, report.DOC.parent) for name, path in pictures.items()}
    run = {
        "when": report.now_utc(),
        "wall_seconds": time.time() - began,
        "smoke": plan.smoke,
        "scenarios_run": names,
        "plan": {**plan.__dict__, "api_processes": args.api_processes or 1},
        "environment": env,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "database": database,
        "baseline": baseline,
        "scenarios": results,
        "audit": final,
        "audit_summary": audit_summary,
        "monitor": monitor_samples,
    }
    block = report.markdown(run, links)
    print("\n" + block, flush=True)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(report.to_json(run))
    (directory / "report.md").write_text(block + "\n")
    print(f"\nresults: {Path(directory).relative_to(report.ROOT)}/ (report.json, report.md, charts)", flush=True)
    if full and not args.no_doc:
        report.write_doc(block)
    ok = audits_ok and all(r.checks_ok for r in results) and all(r.counts.get("ok", 0) > 0 for r in results)
    return 0 if ok else 1
