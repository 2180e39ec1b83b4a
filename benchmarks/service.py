"""End-to-end benchmark of the running service, reported as ratios to pgbench measured in the same run.

    python -m benchmarks.service            # full run (pgbench 30 s, each scenario 30 s)
    python -m benchmarks.service --smoke    # a few seconds each: proves the harness works

It starts the real processes on loopback with ``payment-service dev`` (API, worker, Tansu,
OpenBao, provider emulators) on a scratch database, then drives load from separate processes
(``--load-processes``) so the load generator never shares the server's event loop. Every request
loop is bounded in count and time and stops by itself; traffic goes only to 127.0.0.1.

Scenarios (issue "Performance harness"):

* ``http_overhead`` — ``GET /v1/me`` through every middleware and JWT auth, no database;
* ``donation_uniform`` / ``donation_hot`` — wallet donations behind HTTP (auth, idempotency row,
  one ledger posting, the streamer's alert log, an outbox row, Redis publish), spread over 1000
  streamers or all to one: the hot streamer's balance must not serialize traffic;
* ``purchase`` — durable payments end to end: ``POST /v1/payments`` → YooKassa emulator → the
  customer pays on the emulator → signed webhook → API stores it → worker applies it → ledger +
  outbox → Kafka; measured from the create call to the moment ``GET`` shows ``succeeded``.

After the run an audit checks the books: every succeeded payment has exactly one ledger charge
and one ``payment.succeeded`` event, every other payment moved no money, all posted entries sum
to zero. ``fsync`` and ``synchronous_commit`` stay as the server has them (on, as in production).

Results: printed, written to ``benchmarks/results/latest.json``, and the table in
``docs/performance.md`` between the ``BEGIN service benchmark`` markers is replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from benchmarks.baseline import Baseline, pgbench
from payment_service.auth import PrincipalKind, mint_token
from payment_service.config import AuthSettings
from payment_service.devstack import free_port, read_env_file

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- BEGIN service benchmark -->", "<!-- END service benchmark -->"


@dataclass
class Scenario:
    name: str
    requests: int = 0
    errors: int = 0
    shed_503: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    ratio_to_pgbench: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


# ---- load generator (runs in child processes) ----------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _http_overhead(base: str, token: str, connections: int, seconds: float, max_requests: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=10) as client:

        async def loop() -> None:
            nonlocal errors
            while time.monotonic() < deadline and len(latencies) < max_requests:
                started = time.perf_counter()
                try:
                    r = await client.get("/v1/me")
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

        await asyncio.gather(*(loop() for _ in range(connections)))
    return {"latencies": latencies, "errors": errors, "shed": 0}


async def _purchase(base: str, token: str, connections: int, seconds: float, max_requests: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    shed = 0
    ids: list[str] = []
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=connections * 2, max_keepalive_connections=connections * 2)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=20) as client:

        async def one() -> bool:
            nonlocal shed
            started = time.perf_counter()
            body = {
                "amount": {"value": f"{100 + len(ids) % 900}.00", "currency": "RUB"},
                "method": "bank_card",
                "description": "Benchmark purchase",
                "return_url": "https://store.example/return",
                "provider": "yookassa",
            }
            r = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
            if r.status_code == 503:
                shed += 1
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                return False
            if r.status_code != 201:
                return False
            payment = r.json()
            ids.append(payment["id"])
            url = httpx.URL(payment["action"]["url"])
            emulator = f"{url.scheme}://{url.host}:{url.port}"
            paid = await client.post(f"{emulator}/_emulator/payments/{url.path.rsplit('/', 1)[-1]}/pay", json={})
            if paid.status_code != 200:
                return False
            for _ in range(1000):  # bounded wait for the webhook → worker → ledger path
                got = await client.get(f"/v1/payments/{payment['id']}")
                if got.status_code == 200 and got.json()["status"] == "succeeded":
                    latencies.append((time.perf_counter() - started) * 1000)
                    return True
                await asyncio.sleep(0.01)
            return False

        async def loop() -> None:
            nonlocal errors
            while time.monotonic() < deadline and len(latencies) + errors < max_requests:
                try:
                    if not await one():
                        errors += 1
                except httpx.HTTPError:
                    errors += 1

        await asyncio.gather(*(loop() for _ in range(connections)))
    return {"latencies": latencies, "errors": errors, "shed": shed, "ids": ids}


async def _donations(
    base: str, tokens: list[str], connections: int, seconds: float, max_requests: int, *, hot: bool
) -> dict[str, Any]:
    """Wallet donations: one ledger posting + alert log + outbox row + idempotency row per request."""
    latencies: list[float] = []
    errors = 0
    shed = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=20) as client:

        async def loop(i: int) -> None:
            nonlocal errors, shed
            headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
            n = 0
            while time.monotonic() < deadline and len(latencies) < max_requests:
                n += 1
                streamer = "hot-streamer" if hot else f"streamer-{(i * 7919 + n) % 1000}"
                body = {"streamer_id": streamer, "amount": {"value": "10.00", "currency": "RUB"}, "method": "wallet"}
                started = time.perf_counter()
                try:
                    r = await client.post(
                        "/v1/donations", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
                    )
                except httpx.HTTPError:
                    errors += 1
                    continue
                if r.status_code == 201:
                    latencies.append((time.perf_counter() - started) * 1000)
                elif r.status_code == 503:
                    shed += 1
                else:
                    errors += 1

        await asyncio.gather(*(loop(i) for i in range(connections)))
    return {"latencies": latencies, "errors": errors, "shed": shed}


async def _run_driver(
    name: str, base: str, tokens: list[str], connections: int, seconds: float, cap: int
) -> dict[str, Any]:
    if name == "http_overhead":
        return await _http_overhead(base, tokens[0], connections, seconds, cap)
    if name == "purchase":
        return await _purchase(base, tokens[0], connections, seconds, cap)
    return await _donations(base, tokens, connections, seconds, cap, hot=name == "donation_hot")


def _drive(args: tuple[str, str, list[str], int, float, int]) -> dict[str, Any]:
    name, base, tokens, connections, seconds, max_requests = args
    return asyncio.run(_run_driver(name, base, tokens, connections, seconds, max_requests))


def run_scenario(
    name: str, *, base: str, tokens: list[str], connections: int, seconds: float, processes: int, baseline: Baseline
) -> tuple[Scenario, list[str]]:
    per_process = max(1, connections // processes)
    started = time.perf_counter()
    shares = [tokens[p::processes] or tokens for p in range(processes)]  # each process its own donors
    with ProcessPoolExecutor(max_workers=processes) as pool:
        parts = list(pool.map(_drive, [(name, base, shares[p], per_process, seconds, 10**7) for p in range(processes)]))
    elapsed = time.perf_counter() - started
    latencies = [v for p in parts for v in p["latencies"]]
    scenario = Scenario(
        name=name,
        requests=len(latencies),
        errors=sum(p["errors"] for p in parts),
        shed_503=sum(p["shed"] for p in parts),
        seconds=round(elapsed, 2),
        rate=round(len(latencies) / seconds, 1),
        p50_ms=round(_percentile(latencies, 0.50), 1),
        p95_ms=round(_percentile(latencies, 0.95), 1),
        p99_ms=round(_percentile(latencies, 0.99), 1),
        notes={"connections": per_process * processes, "load_processes": processes},
    )
    scenario.ratio_to_pgbench = round(scenario.rate / baseline.tps, 3) if baseline.tps else 0.0
    return scenario, [i for p in parts for i in p.get("ids", [])]


# ---- the stack ---------------------------------------------------------------------------------


class Stack:
    """``payment-service dev`` on a scratch database, stopped with SIGINT."""

    def __init__(self, admin_dsn: str, redis_url: str) -> None:
        self.admin_dsn = admin_dsn
        self.database = f"bench_service_{os.getpid()}"
        self.dsn = admin_dsn.rsplit("/", 1)[0] + "/" + self.database
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.run_dir = Path(tempfile.mkdtemp(prefix="bench-run-"))
        self.log = self.run_dir / "dev.log"
        self.redis_url = redis_url
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENT_")}
        env.update(DATABASE_URL=self.dsn, REDIS_URL=self.redis_url, PAYMENT_LOG_LEVEL="WARNING")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "payment_service.cli",
                    "dev",
                    "--port",
                    str(self.port),
                    "--run-dir",
                    str(self.run_dir),
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the stack exited: {self.log.read_text()[-3000:]}")
                try:
                    if (await client.get(f"{self.base}/health/ready", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise TimeoutError(f"the stack did not become ready: {self.log.read_text()[-3000:]}")

    def token(self, subject: str = "bench-user") -> str:
        secret = read_env_file(self.run_dir / "dev.env")["PAYMENT_AUTH__HS256_SECRET"]
        auth = AuthSettings(hs256_secret=SecretStr(secret))
        return mint_token(auth, kind=PrincipalKind.user, subject=subject, ttl_seconds=7200)

    async def fund(self, users: list[str], *, rubles: int) -> None:
        """Fund wallets through the wallet service (a support credit), as the service itself would."""
        from payment_service.config import Settings
        from payment_service.db import create_engine, create_sessionmaker, transaction
        from payment_service.kit.clock import SystemClock
        from payment_service.kit.money import Money
        from payment_service.wallet import service as wallet_service

        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        settings.db.url = SecretStr(self.dsn)
        engine = create_engine(settings.db, application_name="bench-fund")
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                for user in users:
                    await wallet_service.adjust(
                        session,
                        user_id=user,
                        amount=Money(rubles * 100, "RUB"),
                        credit=True,
                        note="benchmark donor",
                        operator="bench",
                        idempotency_key=f"bench:fund:{user}",
                        settings=settings.wallet,
                        now=SystemClock().now(),
                    )
        finally:
            await engine.dispose()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()


async def audit(dsn: str, payment_ids: list[str], *, settle_seconds: float = 20.0) -> dict[str, Any]:
    """The books after the run: each succeeded payment charged once with one event; nothing else moved."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + settle_seconds
        while time.monotonic() < deadline:  # let the worker and the relay finish what is in flight
            unpublished = await conn.fetchval("SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
            pending = await conn.fetchval("SELECT count(*) FROM provider_events WHERE status = 'received'")
            if not unpublished and not pending:
                break
            await asyncio.sleep(0.5)
        rows = await conn.fetch(
            """
            SELECT p.id, p.status,
                   (SELECT count(*) FROM ledger_transfers t WHERE t.reference = 'payment:' || p.id
                        AND t.reason IN ('payment_succeeded', 'payment_captured')) AS charges,
                   (SELECT count(*) FROM outbox_events o WHERE o.key = p.id::text AND o.type = 'payment.succeeded') AS events
            FROM payments p
            """
        )
        unbalanced = await conn.fetch(
            "SELECT currency, sum(amount) FROM ledger_entries WHERE phase = 'posted' GROUP BY 1 HAVING sum(amount) <> 0"
        )
        unpublished = await conn.fetchval("SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
    finally:
        await conn.close()
    succeeded = [r for r in rows if r["status"] == "succeeded"]
    problems = [
        f"payment {r['id']} {r['status']}: {r['charges']} charges, {r['events']} succeeded events"
        for r in rows
        if (r["status"] == "succeeded" and (r["charges"] != 1 or r["events"] != 1))
        or (r["status"] != "succeeded" and r["charges"] != 0)
    ]
    known = {str(r["id"]) for r in rows}
    lost = [i for i in payment_ids if i not in known]
    return {
        "payments": len(rows),
        "succeeded": len(succeeded),
        "open_or_failed": len(rows) - len(succeeded),
        "lost": len(lost),
        "doubled_or_wrong": len(problems),
        "unbalanced_currencies": [dict(r) for r in unbalanced],
        "unpublished_events": unpublished,
        "examples": problems[:5],
        "ok": not problems and not lost and not unbalanced,
    }


# ---- report ------------------------------------------------------------------------------------


def _table(baseline: Baseline, scenarios: list[Scenario], audit_result: dict[str, Any], smoke: bool) -> str:
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}{' (smoke run: figures are not meaningful)' if smoke else ''}.",
        "",
        f"Baseline `a`: pgbench TPC-B scale {baseline.scale}, {baseline.clients} clients, "
        f"{baseline.seconds:g} s: **{baseline.tps:,.0f} TPS**.",
        "",
        "| scenario | rate /s | ratio to `a` | p50 ms | p95 ms | p99 ms | errors | 503 shed | connections |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        lines.append(
            f"| {s.name} | {s.rate:,.1f} | {s.ratio_to_pgbench:.3f} | {s.p50_ms} | {s.p95_ms} | {s.p99_ms} | "
            f"{s.errors} | {s.shed_503} | {s.notes.get('connections')} |"
        )
    by_name = {s.name: s for s in scenarios}
    if {"donation_uniform", "donation_hot"} <= by_name.keys() and by_name["donation_uniform"].rate:
        ratio = by_name["donation_hot"].rate / by_name["donation_uniform"].rate
        lines += [
            "",
            f"Hot streamer: donations to one streamer run at **{ratio:.2f}×** the same load spread over 1000 streamers.",
        ]
    lines += [
        "",
        f"Audit: {audit_result['payments']} payments, {audit_result['succeeded']} succeeded, "
        f"{audit_result['lost']} lost, {audit_result['doubled_or_wrong']} doubled or wrong, "
        f"ledger balanced: {not audit_result['unbalanced_currencies']}, "
        f"events still unpublished after settling: {audit_result['unpublished_events']}.",
    ]
    return "\n".join(lines)


def write_doc(table: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Service benchmark (latest run of `make bench`)\n\n" + block + "\n"
    DOC.write_text(text)


async def main(args: argparse.Namespace) -> int:
    seconds = 3.0 if args.smoke else args.seconds
    print(f"baseline: pgbench TPC-B for {seconds:g} s ...", flush=True)
    baseline = await asyncio.to_thread(pgbench, args.dsn, seconds=seconds)
    print(f"  a = {baseline.tps:,.0f} TPS", flush=True)
    stack = Stack(args.dsn, args.redis)
    scenarios: list[Scenario] = []
    ids: list[str] = []
    try:
        print("starting the stack (payment-service dev) ...", flush=True)
        await stack.start()
        tokens = [stack.token()]
        donors = [f"bench-donor-{i}" for i in range(max(args.connections, 2))]
        await stack.fund(donors, rubles=50_000)
        donor_tokens = [stack.token(d) for d in donors]
        plan = (
            ("http_overhead", args.connections, tokens),
            ("purchase", args.purchase_connections, tokens),
            ("donation_uniform", args.connections, donor_tokens),
            ("donation_hot", args.connections, donor_tokens),
        )
        for name, connections, scenario_tokens in plan:
            print(f"scenario {name}: {connections} connections, {seconds:g} s ...", flush=True)
            scenario, created = await asyncio.to_thread(
                run_scenario,
                name,
                base=stack.base,
                tokens=scenario_tokens,
                connections=connections,
                seconds=seconds,
                processes=args.load_processes,
                baseline=baseline,
            )
            scenarios.append(scenario)
            ids += created
            print(
                f"  {scenario.rate:,.1f}/s ({scenario.ratio_to_pgbench:.3f} of a), p99 {scenario.p99_ms} ms", flush=True
            )
        result = await audit(stack.dsn, ids)
    finally:
        await stack.stop()
    table = _table(baseline, scenarios, result, args.smoke)
    print("\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "baseline": asdict(baseline),
        "scenarios": [asdict(s) for s in scenarios],
        "audit": result,
        "smoke": args.smoke,
    }
    (RESULTS / ("smoke.json" if args.smoke else "latest.json")).write_text(json.dumps(report, indent=2, default=str))
    if not args.smoke:
        write_doc(table)
    return 0 if result["ok"] and all(s.requests > 0 for s in scenarios) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dsn", default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--purchase-connections", type=int, default=32)
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="a few seconds per step; proves the harness works")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
