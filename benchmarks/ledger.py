"""Ledger throughput against pgbench TPC-B on the same PostgreSQL server, in one run.

    python benchmarks/ledger.py             # 3 interleaved rounds x 10 s: pgbench, uniform, hot
    python benchmarks/ledger.py --smoke     # a few seconds in total: proves the script works
    python benchmarks/ledger.py --duration 60 --rounds 6 --with-session

What it measures (16 clients in 2 processes, as pgbench ``-c 16 -j 2``):

* ``a``  — pgbench TPC-B (scale 10, simple protocol) in a scratch database;
* ``uniform`` — ledger transfers through ``ledger.service.transfer`` between random user wallets
  (10,000 accounts, both rows locked in id order and updated in place);
* ``hot`` — every transfer credits one hot account (``platform:fees``): the wallet is debited
  under its row lock, the fee account gets an appended delta; the fold job
  (``ledger.tasks.fold_deltas``) runs every 100 ms meanwhile, as in production;
* ``session`` (with ``--with-session``) — ``uniform`` through an SQLAlchemy ``AsyncSession`` per
  transaction (BEGIN, posting, COMMIT: three round trips plus ORM overhead) instead of one
  posting statement on an asyncpg connection in autocommit (one round trip; the posting function
  is a single statement, hence atomic and durable on its own).

Each ledger client holds its own connection (like pgbench clients). The rounds interleave pgbench
and the ledger workloads, so that other load on the machine hits both alike; the ratios are the
medians of the per-round ratios. After each workload the invariants are checked in the database:
per-currency sum of all balances (rows + unfolded deltas) is zero, no wallet is negative, every
account's balance equals the sum of its entries, and the number of transfers equals the number
of acknowledged postings. The script prints transfers/s, latency percentiles, the fold lag and
the ratios, and exits non-zero if an invariant fails. Scratch databases are dropped at the end
unless ``--keep``. Results and method: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from payment_service.kit.money import Money  # noqa: E402
from payment_service.ledger import accounts as ledger_accounts  # noqa: E402
from payment_service.ledger import service as ledger_service  # noqa: E402
from payment_service.ledger import tasks as ledger_tasks  # noqa: E402
from payment_service.ledger.schemas import Posting  # noqa: E402

SEED_AMOUNT = 10**12  # kopecks per wallet: no transfer in a run can exhaust it


@dataclass
class Config:
    admin_dsn: str
    duration: float
    rounds: int
    warmup: float
    clients: int
    threads: int
    scale: int
    accounts: int
    with_session: bool
    keep: bool
    smoke: bool


@dataclass
class Workload:
    name: str
    transfers: int = 0
    seconds: float = 0.0
    tps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    retries: int = 0
    fold_lag_max_ms: int = 0
    invariants_ok: bool = True
    problems: list[str] = field(default_factory=list)


def _dsn_for(admin_dsn: str, database: str) -> str:
    return admin_dsn.rsplit("/", 1)[0] + "/" + database


async def _admin(admin_dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


# ---- pgbench ----------------------------------------------------------------------------------------


def _pg_args(dsn: str) -> list[str]:
    url = urlparse(dsn)
    args = ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432)]
    if url.username:
        args += ["-U", url.username]
    return args


def _pgbench_init(cfg: Config, database: str) -> None:
    base = _pg_args(cfg.admin_dsn)
    subprocess.run(["pgbench", *base, "-i", "-q", "-s", str(cfg.scale), database], check=True, capture_output=True)


def _pgbench_run(cfg: Config, database: str, seconds: float) -> float:
    base = _pg_args(cfg.admin_dsn)
    subprocess.run(["psql", *base, "-d", database, "-qc", "CHECKPOINT"], check=True, capture_output=True)
    command = ["pgbench", *base, "-n", "-c", str(cfg.clients), "-j", str(cfg.threads)]
    out = subprocess.run(
        [*command, "-T", str(max(1, round(seconds))), database], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    if match is None:
        raise RuntimeError(f"cannot parse pgbench output:\n{out}")
    return float(match.group(1))


async def setup_pgbench(cfg: Config, database: str) -> None:
    await _admin(cfg.admin_dsn, f'DROP DATABASE IF EXISTS "{database}"')
    await _admin(cfg.admin_dsn, f'CREATE DATABASE "{database}"')
    await asyncio.to_thread(_pgbench_init, cfg, database)


# ---- ledger -----------------------------------------------------------------------------------------


def _migrate(dsn: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    alembic_cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    alembic_cfg.set_main_option("sqlalchemy.url", dsn)
    command.upgrade(alembic_cfg, "heads")


async def setup_ledger(cfg: Config, database: str) -> list[ledger_accounts.AccountSpec]:
    await _admin(cfg.admin_dsn, f'DROP DATABASE IF EXISTS "{database}"')
    await _admin(cfg.admin_dsn, f'CREATE DATABASE "{database}"')
    dsn = _dsn_for(cfg.admin_dsn, database)
    await asyncio.to_thread(_migrate, dsn)
    wallets = [ledger_accounts.user_wallet(f"bench{i}") for i in range(cfg.accounts)]
    world = ledger_accounts.external_world()
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await ledger_service.ensure_accounts(
                conn, [*wallets, world, ledger_accounts.platform_fees(), ledger_accounts.developer_balance("bench")]
            )
            await ledger_service.transfer(
                conn,
                postings=[Posting(world, w, Money(SEED_AMOUNT, "RUB")) for w in wallets],
                idempotency_key="bench:seed",
                reference="bench:seed",
                reason="bench_seed",
                now=datetime.now(UTC),
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return wallets


async def _fold_loop(dsn: str, stop: asyncio.Event, lags: list[int]) -> None:
    """The fold job, every 100 ms, on its own connection (what the worker runs)."""
    conn = await asyncpg.connect(dsn)
    try:
        # Leftovers of the previous workload (committed after its folder stopped) are not lag.
        await ledger_tasks.fold_deltas(conn, now=datetime.now(UTC))
        while not stop.is_set():
            with contextlib.suppress(Exception):
                result = await ledger_tasks.fold_deltas(conn, now=datetime.now(UTC))
                lags.append(result.oldest_age_ms)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    finally:
        await conn.close()


@dataclass
class _Share:
    """What one client process did in the measured window."""

    transfers: int
    measured: int
    retries: int
    latencies: list[float]


async def _clients(
    dsn: str, name: str, first: int, count: int, accounts: int, tag: str, start_at: float, seconds: float, pool: int
) -> _Share:
    """``count`` clients (ids from ``first``), each on its own connection, posting until the window ends."""
    wallets = [ledger_accounts.user_wallet(f"bench{i}") for i in range(accounts)]
    fees = ledger_accounts.platform_fees()
    share = _Share(0, 0, 0, [])
    end_at = start_at + seconds
    engine = None
    sessionmaker = None
    if name == "session":
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        engine = create_async_engine(
            dsn.replace("postgresql://", "postgresql+asyncpg://", 1), pool_size=pool, max_overflow=0
        )
        sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    async def post(conn: asyncpg.Connection | None, posting: Posting, key: str) -> None:
        kwargs = {"postings": [posting], "idempotency_key": key, "reference": key, "reason": "bench"}
        if conn is not None:
            await ledger_service.transfer(conn, now=datetime.now(UTC), **kwargs)  # type: ignore[arg-type]
            return
        assert sessionmaker is not None

        async def work(session: object) -> None:
            await ledger_service.transfer(session, now=datetime.now(UTC), **kwargs)  # type: ignore[arg-type]

        await ledger_service.run_in_transaction(sessionmaker, work)

    async def client(index: int) -> None:
        rng = random.Random(index)
        conn = None if sessionmaker is not None else await asyncpg.connect(dsn)
        try:
            n = 0
            while time.time() < end_at:
                debit = rng.choice(wallets)
                credit = fees if name == "hot" else rng.choice(wallets)
                if credit is debit:
                    continue
                n += 1
                posting = Posting(debit, credit, Money(rng.randint(1, 10_000), "RUB"))
                started = time.perf_counter()
                for _attempt in range(10):
                    try:
                        await post(conn, posting, f"bench:{tag}:{index}:{n}")
                        break
                    except ledger_service.LedgerBusy:
                        share.retries += 1
                share.transfers += 1
                if time.time() >= start_at:
                    share.measured += 1
                    share.latencies.append(time.perf_counter() - started)
        finally:
            if conn is not None:
                await conn.close()

    await asyncio.gather(*(client(first + i) for i in range(count)))
    if engine is not None:
        await engine.dispose()
    return share


def _client_process(args: tuple[str, str, int, int, int, str, float, float, int]) -> _Share:
    return uvloop.run(_clients(*args))


def _ready(delay: float) -> None:
    """Keeps a worker busy for ``delay`` so that the pool starts all its processes."""
    time.sleep(delay)


def client_pool(cfg: Config) -> ProcessPoolExecutor | None:
    jobs = max(1, min(cfg.threads, cfg.clients))
    if jobs == 1:
        return None
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    # Each worker process imports everything when it starts; do that before any timed window.
    list(pool.map(_ready, [1.0] * jobs))
    return pool


async def run_workload(
    cfg: Config,
    database: str,
    name: str,
    wallets: list[ledger_accounts.AccountSpec],
    *,
    duration: float | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> Workload:
    """``cfg.clients`` clients split over ``cfg.threads`` processes (as pgbench ``-c``/``-j``)."""
    dsn = _dsn_for(cfg.admin_dsn, database)
    await _admin(dsn, "CHECKPOINT")
    seconds = cfg.duration if duration is None else duration
    tag = uuid.uuid4().hex[:8]
    jobs = max(1, min(cfg.threads, cfg.clients)) if pool is not None else 1
    per_job = [cfg.clients // jobs + (1 if j < cfg.clients % jobs else 0) for j in range(jobs)]
    start_at = time.time() + 1.0  # connections open
    args = [
        (dsn, name, sum(per_job[:j]), per_job[j], len(wallets), tag, start_at, seconds, per_job[j]) for j in range(jobs)
    ]
    stop = asyncio.Event()
    lags: list[int] = []
    folder = asyncio.create_task(_fold_loop(dsn, stop, lags))
    try:
        if pool is None:
            shares = [await _clients(*args[0])]
        else:
            loop = asyncio.get_running_loop()
            shares = list(await asyncio.gather(*(loop.run_in_executor(pool, _client_process, a) for a in args)))
    finally:
        stop.set()
        await folder

    result = Workload(name=name)
    result.transfers = sum(s.transfers for s in shares)
    result.retries = sum(s.retries for s in shares)
    result.seconds = round(seconds, 2)
    result.tps = round(sum(s.measured for s in shares) / seconds, 1)
    latencies = sorted(x for s in shares for x in s.latencies)
    if latencies:
        result.p50_ms = round(1000 * statistics.median(latencies), 2)
        result.p99_ms = round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2)
    result.fold_lag_max_ms = max(lags, default=0)
    result.problems = await check_invariants(dsn, expected_transfers=result.transfers, tag=tag)
    result.invariants_ok = not result.problems
    return result


async def check_invariants(dsn: str, *, expected_transfers: int, tag: str) -> list[str]:
    """G1 over the whole ledger, and the count of this workload's transfers."""
    conn = await asyncpg.connect(dsn)
    problems: list[str] = []
    try:
        rows = await conn.fetch(
            """
            SELECT a.currency, sum(a.posted + coalesce(d.p, 0)) AS posted,
                   sum(a.pending_credits + coalesce(d.pc, 0) - a.pending_debits - coalesce(d.pd, 0)) AS pending
              FROM ledger_accounts a
              LEFT JOIN (SELECT account_id, sum(posted) p, sum(pending_debits) pd, sum(pending_credits) pc
                           FROM ledger_account_deltas GROUP BY account_id) d ON d.account_id = a.id
             GROUP BY a.currency
            """
        )
        for row in rows:
            if row["posted"] != 0 or row["pending"] != 0:
                problems.append(f"{row['currency']}: balances sum to {row['posted']} / pending {row['pending']}")
        negative = await conn.fetchval(
            "SELECT count(*) FROM ledger_accounts WHERE NOT allow_negative AND posted - pending_debits < 0"
        )
        if negative:
            problems.append(f"{negative} non-negative accounts are negative")
        drift = await conn.fetchval(
            """
            SELECT count(*) FROM ledger_accounts a
              LEFT JOIN (SELECT account_id, sum(posted) p FROM ledger_account_deltas GROUP BY account_id) d
                     ON d.account_id = a.id
              LEFT JOIN (SELECT account_id, sum(amount) s FROM ledger_entries WHERE phase = 'posted'
                          GROUP BY account_id) e ON e.account_id = a.id
             WHERE a.posted + coalesce(d.p, 0) <> coalesce(e.s, 0)
            """
        )
        if drift:
            problems.append(f"{drift} accounts differ from the sum of their entries")
        count = await conn.fetchval(
            "SELECT count(*) FROM ledger_transfers WHERE idempotency_key LIKE $1", f"bench:{tag}:%"
        )
        if count != expected_transfers:
            problems.append(f"{count} transfers stored, {expected_transfers} acknowledged")
    finally:
        await conn.close()
    return problems


# ---- main -------------------------------------------------------------------------------------------


def _merge(name: str, rounds: list[Workload]) -> Workload:
    """One workload over all rounds: total transfers over total time, worst lag, all problems."""
    seconds = sum(w.seconds for w in rounds)
    measured = sum(w.tps * w.seconds for w in rounds)
    return Workload(
        name=name,
        transfers=sum(w.transfers for w in rounds),
        seconds=round(seconds, 2),
        tps=round(measured / seconds, 1) if seconds else 0.0,
        p50_ms=round(statistics.median(w.p50_ms for w in rounds), 2),
        p99_ms=max(w.p99_ms for w in rounds),
        retries=sum(w.retries for w in rounds),
        fold_lag_max_ms=max(w.fold_lag_max_ms for w in rounds),
        invariants_ok=all(w.invariants_ok for w in rounds),
        problems=[p for w in rounds for p in w.problems],
    )


async def main(cfg: Config) -> int:
    suffix = f"{os.getpid()}"
    pgbench_db = f"bench_pgbench_{suffix}"
    ledger_db = f"bench_ledger_{suffix}"
    report: dict[str, object] = {"config": asdict(cfg)}
    per_round = cfg.duration / cfg.rounds
    workloads = ["uniform", "hot"] + (["session"] if cfg.with_session else [])
    ok = False
    pool = client_pool(cfg)
    try:
        print(f"setup: pgbench -i -s {cfg.scale}; ledger with {cfg.accounts} funded wallets ...")
        await setup_pgbench(cfg, pgbench_db)
        wallets = await setup_ledger(cfg, ledger_db)
        if cfg.warmup > 0:
            # Unmeasured: fills the caches and makes the server create its WAL segments (pgbench got
            # both from its own initialisation); without it the first workload waits on WALWrite.
            warm = await run_workload(cfg, ledger_db, "uniform", wallets, duration=cfg.warmup, pool=pool)
            print(f"  warm-up {cfg.warmup:g} s: {warm.tps:,.0f} transfers/s (not counted)")
        print(
            f"{cfg.rounds} round(s) of {per_round:g} s each: pgbench TPC-B (-c {cfg.clients} -j {cfg.threads}), "
            f"then {', '.join(workloads)} ({cfg.clients} clients in {cfg.threads} processes); "
            "other load on the machine hits all alike"
        )
        pgbench_tps: list[float] = []
        rounds: dict[str, list[Workload]] = {name: [] for name in workloads}
        for r in range(cfg.rounds):
            tps_a = await asyncio.to_thread(_pgbench_run, cfg, pgbench_db, per_round)
            pgbench_tps.append(tps_a)
            line = [f"  round {r + 1}: a = {tps_a:,.0f}"]
            for name in workloads:
                w = await run_workload(cfg, ledger_db, name, wallets, duration=per_round, pool=pool)
                rounds[name].append(w)
                line.append(f"{name} = {w.tps:,.0f} ({w.tps / tps_a:.2f}a)")
            print("  ".join(line))
        tps_a = round(sum(pgbench_tps) / len(pgbench_tps), 1)
        results = {name: _merge(name, rs) for name, rs in rounds.items()}
        print(f"pgbench TPC-B: a = {tps_a:,.0f} TPS (mean of {cfg.rounds})")
        for name, w in results.items():
            print(
                f"  {name:8s} {w.tps:>9,.0f} transfers/s  p50 {w.p50_ms:.1f} ms  p99 {w.p99_ms:.1f} ms  "
                f"retries {w.retries}  fold lag max {w.fold_lag_max_ms} ms  "
                f"invariants {'ok' if w.invariants_ok else 'FAILED: ' + '; '.join(w.problems)}"
            )

        def median_ratio(name: str, base: list[float]) -> float:
            values = [w.tps / b for w, b in zip(rounds[name], base, strict=True) if b]
            return round(statistics.median(values), 2) if values else 0.0

        uniform_tps = [w.tps for w in rounds["uniform"]]
        ratios = {
            "uniform/a": median_ratio("uniform", pgbench_tps),
            "hot/a": median_ratio("hot", pgbench_tps),
            "hot/uniform": median_ratio("hot", uniform_tps),
        }
        if "session" in results:
            ratios["session/a"] = median_ratio("session", pgbench_tps)
        print("ratios (median over rounds): " + "  ".join(f"{k} = {v:.2f}" for k, v in ratios.items()))
        print("targets: uniform/a >= 1.00, hot/uniform >= 0.90")
        report.update(
            pgbench_tps=tps_a,
            pgbench_rounds=pgbench_tps,
            workloads={k: asdict(v) for k, v in results.items()},
            rounds={k: [w.tps for w in rs] for k, rs in rounds.items()},
            ratios=ratios,
        )
        ok = all(w.invariants_ok for w in results.values())
    finally:
        if pool is not None:
            pool.shutdown()
        if not cfg.keep:
            await _admin(cfg.admin_dsn, f'DROP DATABASE IF EXISTS "{pgbench_db}" WITH (FORCE)')
            await _admin(cfg.admin_dsn, f'DROP DATABASE IF EXISTS "{ledger_db}" WITH (FORCE)')
    print("JSON " + json.dumps(report))
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dsn",
        default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin connection (scratch databases are created next to it)",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per workload (pgbench too), in total")
    parser.add_argument("--rounds", type=int, default=3, help="interleave pgbench and ledger in this many rounds")
    parser.add_argument("--warmup", type=float, default=10.0, help="unmeasured ledger seconds before measuring")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="pgbench -j, and ledger client processes")
    parser.add_argument("--scale", type=int, default=10, help="pgbench -s")
    parser.add_argument("--accounts", type=int, default=10_000, help="wallets in the uniform workload")
    parser.add_argument("--with-session", action="store_true", help="also measure through AsyncSession")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument("--smoke", action="store_true", help="a few seconds in total, tiny data")
    args = parser.parse_args(argv)
    cfg = Config(
        admin_dsn=args.dsn,
        duration=args.duration,
        rounds=max(1, args.rounds),
        warmup=args.warmup,
        clients=args.clients,
        threads=args.threads,
        scale=args.scale,
        accounts=args.accounts,
        with_session=args.with_session,
        keep=args.keep,
        smoke=args.smoke,
    )
    if args.smoke:
        cfg.duration, cfg.rounds, cfg.warmup, cfg.clients, cfg.scale, cfg.accounts = 1.0, 1, 0.5, 4, 1, 200
        cfg.with_session = True
    return cfg


if __name__ == "__main__":
    sys.exit(uvloop.run(main(parse_args())))
