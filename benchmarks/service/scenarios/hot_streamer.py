"""Scenario 3: a hot streamer under a donation storm, with WebSocket alert clients connected.

Open loop: wallet donations arrive at half the purchase capacity measured by scenario 1, for
``hot_seconds`` spread over 1000 streamers (``uniform``), then for as long all to one streamer
(``hot``). Throughout, ``ws_clients`` WebSocket clients are connected to ``/v1/ws/donations``:
``ws_hot_watchers`` of them watch the hot streamer, the others one distinct streamer each of the
1000 (so the uniform phase's alerts are received too). Alerts go to a streamer's overlay and
dashboards — a handful of connections per streamer, not one per viewer (viewers see the alert in
the video stream) — hence the default of 50 connections on the hot streamer: the count of all
overlays and dashboards of a very big channel. ``--ws-hot-watchers 1000`` puts every client on it.

Measured: throughput of each phase and their ratio (goal hot ≥ 0.9 × uniform), the donation
requests' latency, the alert latency (the sender's wall time at the 201 → the WebSocket client's
wall time at the frame, joined on the donation id; goal p50 ≤ 50 ms, p99 ≤ 150 ms), alerts
received vs expected per connection (lost and doubled must be 0), and the hot streamer's balance
(the API's ``GET /v1/streamers/me/payouts`` with the streamer's token, and the ``donations`` rows)
against the sum of the ``streamer_amount`` of its donations' 201 responses.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from typing import Any

import asyncpg
import httpx

from benchmarks.service import loadgen
from benchmarks.service.loadgen import LoadPool
from benchmarks.service.report import Goal, ScenarioResult, from_samples
from benchmarks.service.samples import OK, Sample, per_second, summary
from benchmarks.service.scenarios import HOT_STREAMER, UNIFORM_STREAMERS, Context, donations_open_loop
from benchmarks.service.watchers import WatchJob


def _watchers(ctx: Context) -> list[tuple[str, str]]:
    plan = ctx.plan
    hot = min(plan.ws_hot_watchers, plan.ws_clients)
    others = [UNIFORM_STREAMERS[i % len(UNIFORM_STREAMERS)] for i in range(plan.ws_clients - hot)]
    tokens = {s: ctx.stack.token(s) for s in {HOT_STREAMER, *others}}
    return [(HOT_STREAMER, tokens[HOT_STREAMER])] * hot + [(s, tokens[s]) for s in others]


async def _phase(ctx: Context, rate: float, streamers: list[str], tag: str) -> list[dict[str, Any]]:
    return await donations_open_loop(
        ctx, rate=rate, streamers=streamers, seconds=ctx.plan.hot_seconds, tag=tag, seed=200
    )


async def _wait_for(counter: Any, target: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while counter.value < target:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def hot_streamer(ctx: Context) -> ScenarioResult:
    plan = ctx.plan
    rate = max(2.0, 0.5 * ctx.capacity)
    conns = _watchers(ctx)
    shares = loadgen.split(len(conns), plan.load_processes)
    bounds = [sum(shares[:i]) for i in range(len(shares) + 1)]
    watch_jobs = [
        WatchJob(
            ws_base=ctx.stack.ws_base, conns=conns[bounds[i] : bounds[i + 1]], max_seconds=4 * plan.hot_seconds + 300
        )
        for i in range(len(shares))
    ]
    with LoadPool(len(watch_jobs)) as pool:
        futures = pool.submit_all(watch_jobs)
        connected = await _wait_for(pool.ready, len(conns), 180)
        uniform = await _phase(ctx, rate, UNIFORM_STREAMERS, "uniform")
        hot = await _phase(ctx, rate, [HOT_STREAMER], "hot")
        records = [r for p in uniform + hot for r in p["records"]]
        watchers_of = Counter(s for s, _ in conns)
        expected_frames = sum(watchers_of[r["streamer"]] for r in records if r["outcome"] == OK)
        complete = await _wait_for(pool.progress, expected_frames, 30)
        pool.stop.set()
        watched = [f.result() for f in futures]
    alerts = _alerts(records, watched)
    balance = await _balance(ctx, records)
    phases = {tag: _phase_stats(part, plan.hot_seconds) for tag, part in (("uniform", uniform), ("hot", hot))}
    ratio = phases["hot"]["rate"] / phases["uniform"]["rate"] if phases["uniform"]["rate"] else 0.0
    samples: list[Sample] = [s for p in uniform + hot for s in p["samples"]]
    started = min(p["started"] for p in uniform)
    ended = max(r["done"] for r in records) if records else time.time()
    result = from_samples(
        "hot_streamer",
        "Hot streamer (open loop, WebSocket alerts)",
        "3",
        samples,
        started=started,
        ended=ended,
        baseline=ctx.baseline,
        measured=(phases["hot"]["start"], phases["hot"]["start"] + plan.hot_seconds),
    )
    every = alerts["latency"]
    result.goals = [
        Goal("hot ≥ 0.9 × uniform", ratio >= 0.9 if phases["uniform"]["rate"] else None),
        Goal("alert p50 ≤ 50 ms", every["p50_ms"] <= 50 if every["count"] else None),
        Goal("alert p99 ≤ 150 ms", every["p99_ms"] <= 150 if every["count"] else None),
        Goal("no alert lost or doubled", alerts["lost"] == 0 and alerts["doubled"] == 0),
        Goal("balance exact", balance["ok"]),
    ]
    result.checks_ok = alerts["lost"] == 0 and alerts["doubled"] == 0 and alerts["unexpected"] == 0 and balance["ok"]
    lags = [
        s["payment_event_loop_lag_seconds"]
        for s in ctx.monitor.window(started, ended)
        if "payment_event_loop_lag_seconds" in s
    ]
    loop_lag_max_ms = round(max(lags, default=0.0) * 1000, 1)
    result.details = {
        "api_loop_lag_max_ms": loop_lag_max_ms,
        "offered_rate": round(rate, 1),
        "capacity_used": ctx.capacity,
        "ws_clients": len(conns),
        "ws_hot_watchers": watchers_of[HOT_STREAMER],
        "all_connected": connected,
        "all_alerts_arrived": complete,
        "phases": phases,
        "hot_over_uniform": round(ratio, 3),
        "alerts": alerts,
        "balance": balance,
        "summary": (
            f"offered {rate:,.1f} donations/s (half the purchase capacity) for {plan.hot_seconds:g} s per phase; "
            f"{len(conns)} WebSocket clients ({watchers_of[HOT_STREAMER]} on the hot streamer). Throughput hot/uniform "
            f"**{ratio:.2f}** ({phases['hot']['rate']:,.1f}/s vs {phases['uniform']['rate']:,.1f}/s; request p99 "
            f"{phases['hot']['latency']['p99_ms']} vs {phases['uniform']['latency']['p99_ms']} ms). Alert latency "
            f"(201 → frame) p50 **{every['p50_ms']} ms**, p99 **{every['p99_ms']} ms** over {every['count']:,} frames "
            f"(hot phase p99 {alerts['by_phase'].get('hot', {}).get('p99_ms', '—')} ms); lost {alerts['lost']}, "
            f"doubled {alerts['doubled']}, out of order {alerts['out_of_order']}, reconnects {alerts['reconnects']}; "
            f"the API's event loop lagged at most {loop_lag_max_ms} ms (sampled every 250 ms). "
            f"Hot streamer balance {balance['api_minor'] / 100:,.2f} RUB = sum of 201s "
            f"{balance['expected_minor'] / 100:,.2f}: {balance['ok']}."
        ),
    }
    offered_t = [0.0, phases["hot"]["start"] - started, ended - started]
    result.extra_series = {
        "offered": {"t": offered_t, "rate": [rate, rate, rate]},
        "alerts": alerts.pop("series"),
        "marks": [[0.0, " spread over 1000 streamers"], [phases["hot"]["start"] - started, " all to one streamer"]],
    }
    return result


def _phase_stats(parts: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Throughput of an open-loop phase: its successful donations over the time the phase's work
    took (the nominal duration, or longer when answers came late)."""
    start = min(p["started"] for p in parts)
    ok = [r for p in parts for r in p["records"] if r["outcome"] == OK]
    span = max([seconds, *(r["done"] - start for r in ok)])
    late = sorted(x for p in parts for x in p["lateness_ms"])
    return {
        "start": start,
        "arrivals": sum(p["arrivals"] for p in parts),
        "ok": len(ok),
        "rate": round(len(ok) / span, 1),
        "span_s": round(span, 2),
        "latency": summary([s[1] for p in parts for s in p["samples"] if s[2] == OK]),
        "generator_lateness_p99_ms": round(late[int(0.99 * (len(late) - 1))], 1) if late else 0.0,
        "not_ok": sum(1 for p in parts for s in p["samples"] if s[2] != OK),
    }


def _alerts(records: list[dict[str, Any]], watched: list[dict[str, Any]]) -> dict[str, Any]:
    sent_at = {r["donation_id"]: r["done"] for r in records if r["outcome"] == OK}
    phase_of = {r["donation_id"]: r["tag"] for r in records if r["outcome"] == OK}
    expected: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r["outcome"] == OK:
            expected[r["streamer"]].add(r["donation_id"])
    donation_of: dict[str, dict[int, str]] = defaultdict(dict)
    for part in watched:
        for streamer, mapping in part["donation_of"].items():
            donation_of[streamer].update(mapping)
    lost = doubled = unexpected = out_of_order = reconnects = 0
    errors: list[str] = []
    latencies: list[float] = []
    by_phase: dict[str, list[float]] = defaultdict(list)
    frames: list[Sample] = []
    for part in watched:
        for conn in part["conns"]:
            streamer = conn["streamer"]
            reconnects += conn["reconnects"]
            errors += conn["errors"]
            seen: Counter[str] = Counter()
            previous = conn["hello_last"] or 0
            for seq, received in zip(conn["seqs"], conn["times"], strict=True):
                if seq != previous + 1:
                    out_of_order += 1
                previous = seq
                donation = donation_of[streamer].get(seq, "")
                seen[donation] += 1
                if donation in sent_at and seen[donation] == 1:
                    latency = (received - sent_at[donation]) * 1000
                    latencies.append(latency)
                    by_phase[phase_of[donation]].append(latency)
                    frames.append((received, latency, OK))
            doubled += sum(n - 1 for n in seen.values() if n > 1)
            lost += len(expected[streamer] - seen.keys())
            unexpected += len(seen.keys() - expected[streamer])
    start = min((r["sent"] for r in records), default=0.0)
    end = max((f[0] for f in frames), default=start)
    series = per_second(frames, start, end + 1)
    return {
        "frames": len(latencies),
        "latency": summary(latencies),
        "min_ms": round(min(latencies), 1) if latencies else 0.0,
        "by_phase": {k: summary(v) for k, v in by_phase.items()},
        "lost": lost,
        "doubled": doubled,
        "unexpected": unexpected,
        "out_of_order": out_of_order,
        "reconnects": reconnects,
        "errors": errors[:5],
        "series": {"t": series["t"], "p50": series["p50"], "p99": series["p99"]},
    }


async def _balance(ctx: Context, records: list[dict[str, Any]]) -> dict[str, Any]:
    expected = sum(r["streamer_minor"] for r in records if r["outcome"] == OK and r["streamer"] == HOT_STREAMER)
    async with httpx.AsyncClient(base_url=ctx.stack.base, trust_env=False, timeout=30) as http:
        response = await http.get(
            "/v1/streamers/me/payouts", headers={"Authorization": f"Bearer {ctx.stack.token(HOT_STREAMER)}"}
        )
    value = response.json()["balance"]["balance"]["value"] if response.status_code == 200 else "0"
    rubles, _, kopecks = value.partition(".")
    api_minor = int(rubles) * 100 + int((kopecks + "00")[:2])
    conn = await asyncpg.connect(ctx.stack.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, coalesce(sum(streamer_minor), 0) AS net FROM donations "
            "WHERE streamer_id = $1 AND status = 'processed'",
            HOT_STREAMER,
        )
    finally:
        await conn.close()
    assert row is not None
    ok_count = sum(1 for r in records if r["outcome"] == OK and r["streamer"] == HOT_STREAMER)
    return {
        "api_status": response.status_code,
        "api_minor": api_minor,
        "expected_minor": expected,
        "db_donations": int(row["n"]),
        "db_net_minor": int(row["net"]),
        "acknowledged_donations": ok_count,
        "ok": api_minor == expected == int(row["net"]) and int(row["n"]) == ok_count,
    }
