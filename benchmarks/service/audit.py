"""Checks of the books after load, read-only (SQL on the scratch database, the emulators' truth).

* :func:`books` — every payment is either ``succeeded`` with exactly one ledger charge and one
  ``payment.succeeded`` event, or not succeeded with no charge and no ``payment.succeeded`` event
  (a failed/canceled/expired one also has its one final event); all posted entries sum to zero per
  currency; nothing left unpublished once the worker settled.
* :func:`reconcile` — the providers' side: the emulators' truth ledgers (what each provider really
  charged) against our payments: every charge at a provider belongs to exactly one succeeded
  payment whose winning attempt is that provider payment, for the same amount, and every succeeded
  payment was charged exactly once. A charge without any payment, or whose payment failed, is money
  taken from a customer that the books do not show (lost); two for one payment is money taken
  twice. A charge whose payment is still open (its webhook was refused or is late) is counted as
  awaiting the status sync, after waiting for it a while.
* :func:`idempotency` — at most one payment per Idempotency-Key used, and it is the payment the
  client was told about (a key whose request got an error answer after the payment was committed
  holds a payment the client was not told about: counted, not a violation — a retry with the key
  resumes it).
* :func:`outbox_lag` — per-event lag (``published_at - created_at``) of the events created in a
  window, and the relay's publish rate over it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg

from benchmarks.service.stack import Stack

PROVIDERS = ("yookassa", "tbank", "sber")
FINAL_EVENT = {"failed": "payment.failed", "canceled": "payment.canceled", "expired": "payment.expired"}
OPEN = frozenset({"pending", "requires_action", "authorized"})


async def settle(dsn: str, *, seconds: float = 30.0) -> dict[str, Any]:
    """Wait (bounded) until the worker applied every webhook and the relay published every event."""
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    try:
        while True:
            unpublished = await conn.fetchval("SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
            pending = await conn.fetchval("SELECT count(*) FROM provider_events WHERE status = 'received'")
            if (not unpublished and not pending) or time.monotonic() - started > seconds:
                return {
                    "waited_s": round(time.monotonic() - started, 2),
                    "unpublished": unpublished,
                    "webhooks_pending": pending,
                }
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


async def books(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            WITH charges AS (
                SELECT reference, count(*) AS n FROM ledger_transfers
                WHERE reason IN ('payment_succeeded', 'payment_captured') GROUP BY reference
            ), events AS (
                SELECT key,
                       count(*) FILTER (WHERE type = 'payment.succeeded') AS succeeded,
                       count(*) FILTER (WHERE type IN ('payment.failed', 'payment.canceled', 'payment.expired'))
                           AS final
                FROM outbox_events WHERE type LIKE 'payment.%' GROUP BY key
            )
            SELECT p.id, p.status, coalesce(c.n, 0) AS charges, coalesce(e.succeeded, 0) AS succeeded_events,
                   coalesce(e.final, 0) AS final_events
            FROM payments p
            LEFT JOIN charges c ON c.reference = 'payment:' || p.id
            LEFT JOIN events e ON e.key = p.id::text
            """
        )
        unbalanced = await conn.fetch(
            "SELECT currency, sum(amount) AS sum FROM ledger_entries WHERE phase = 'posted' "
            "GROUP BY 1 HAVING sum(amount) <> 0"
        )
        unpublished = await conn.fetchval("SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
    finally:
        await conn.close()
    problems: list[str] = []
    status_counts: Counter[str] = Counter()
    for r in rows:
        status = str(r["status"])
        status_counts[status] += 1
        if status == "succeeded":
            if r["charges"] != 1 or r["succeeded_events"] != 1:
                problems.append(f"{r['id']} succeeded: {r['charges']} charges, {r['succeeded_events']} events")
        elif r["charges"] != 0 or r["succeeded_events"] != 0:
            problems.append(f"{r['id']} {status}: {r['charges']} charges, {r['succeeded_events']} succeeded events")
        elif status in FINAL_EVENT and r["final_events"] != 1:
            problems.append(f"{r['id']} {status}: {r['final_events']} final events")
    return {
        "payments": len(rows),
        "by_status": dict(sorted(status_counts.items())),
        "doubled_or_wrong": len(problems),
        "unbalanced_currencies": [{"currency": r["currency"], "sum": int(r["sum"])} for r in unbalanced],
        "unpublished_events": unpublished,
        "examples": problems[:5],
        "ok": not problems and not unbalanced,
    }


async def reconcile(stack: Stack, *, wait_seconds: float = 0.0) -> dict[str, Any]:
    """Provider truth (emulator ledgers) against our payments.

    A charge whose payment is still open (``requires_action``/``pending``/``authorized``: its
    webhook was refused or is late) is *awaiting sync*, not lost: the status-sync job asks the
    provider and applies it (after 5 s, 15 s, 1 min, 5 min). The check is repeated for up to
    ``wait_seconds`` while such charges remain; what is still open then is reported.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        result = await _reconcile_once(stack)
        if not result["awaiting_sync"] or time.monotonic() >= deadline:
            result["waited_s"] = round(wait_seconds - max(0.0, deadline - time.monotonic()), 1)
            return result
        await asyncio.sleep(2.0)


async def _reconcile_once(stack: Stack) -> dict[str, Any]:
    charged: dict[tuple[str, str], int] = {}
    for provider in PROVIDERS:
        for entry in await stack.emulator(provider, "GET", "/_emulator/ledger"):
            sign = {"charge": 1, "capture": 1, "refund": -1}.get(entry["kind"])
            if sign is not None:
                key = (provider, str(entry["payment_id"]))
                charged[key] = charged.get(key, 0) + sign * int(entry["amount_minor"])
    conn = await asyncpg.connect(stack.dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT p.id, p.status, p.amount_minor, a.provider, a.provider_payment_id, a.status AS attempt_status
            FROM payments p JOIN payment_attempts a ON a.payment_id = p.id
            WHERE a.provider_payment_id IS NOT NULL
            """
        )
        # Money the service booked for a refund (late money, or a second provider payment under
        # one attempt): accounted for, not lost.
        refund_due = {
            (r["provider"], r["provider_payment_id"])
            for r in await conn.fetch(
                "SELECT payload->>'provider' AS provider, payload->>'provider_payment_id' AS provider_payment_id "
                "FROM outbox_events WHERE type = 'payment.refund_required'"
            )
        }
    finally:
        await conn.close()
    ours: dict[tuple[str, str], Any] = {(r["provider"], str(r["provider_payment_id"])): r for r in rows}
    problems: list[str] = []
    awaiting: list[str] = []
    booked_for_refund: list[str] = []
    succeeded_charges: Counter[str] = Counter()
    for key, amount in charged.items():
        if amount == 0:
            continue
        row = ours.get(key)
        if row is None and key in refund_due:
            booked_for_refund.append(f"{key[0]} charged {key[1]} ({amount}): booked for a refund")
        elif row is None:
            problems.append(f"{key[0]} charged {key[1]} ({amount}) but no payment knows it: money lost")
        elif row["status"] in OPEN:
            awaiting.append(f"{key[0]} charged {key[1]}; payment {row['id']} still {row['status']}")
        elif row["status"] != "succeeded" or row["attempt_status"] != "succeeded":
            problems.append(f"{key[0]} charged {key[1]} but payment {row['id']} is {row['status']}")
        elif amount != row["amount_minor"]:
            problems.append(f"{key[0]} charged {amount} for payment {row['id']} of {row['amount_minor']}")
        else:
            succeeded_charges[str(row["id"])] += 1
    doubled = [pid for pid, n in succeeded_charges.items() if n > 1]
    problems += [f"payment {pid} charged at more than one provider payment" for pid in doubled]
    succeeded = {str(r["id"]) for r in rows if r["status"] == "succeeded"}
    uncharged = sorted(succeeded - set(succeeded_charges))
    problems += [f"payment {pid} succeeded but no provider charged it" for pid in uncharged[:5]]
    return {
        "provider_charges": sum(1 for a in charged.values() if a),
        "succeeded_payments": len(succeeded),
        "awaiting_sync": len(awaiting),
        "awaiting_examples": awaiting[:3],
        "booked_for_refund": len(booked_for_refund),
        "booked_for_refund_examples": booked_for_refund[:3],
        "problems": len(problems) + max(0, len(uncharged) - 5),
        "examples": problems[:5],
        "ok": not problems,
    }


async def idempotency(dsn: str, told: dict[str, str | None]) -> dict[str, Any]:
    """``told`` maps every Idempotency-Key a client used to the payment id it was given (or None)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT i.key, array_agg(p.id::text) FILTER (WHERE p.id IS NOT NULL) AS payments
            FROM idempotency_keys i LEFT JOIN payments p ON p.request_key = i.id
            WHERE i.key = ANY($1::text[]) AND i.path = '/v1/payments'
            GROUP BY i.key
            """,
            list(told),
        )
    finally:
        await conn.close()
    found = {r["key"]: list(r["payments"] or []) for r in rows}
    problems: list[str] = []
    orphans = 0
    for key, payment_id in told.items():
        payments = found.get(key, [])
        if len(payments) > 1:
            problems.append(f"key {key}: {len(payments)} payments")
        elif payment_id is not None and payments != [payment_id]:
            problems.append(f"key {key}: client was told {payment_id}, the key holds {payments}")
        elif payment_id is None and payments:
            orphans += 1  # an error answer after the payment was committed; a retry would resume it
    return {
        "keys": len(told),
        "keys_with_a_payment": sum(1 for p in found.values() if p),
        "payment_behind_an_error_answer": orphans,
        "problems": len(problems),
        "examples": problems[:5],
        "ok": not problems,
    }


async def outbox_lag(dsn: str, start: float, end: float) -> dict[str, Any]:
    """Lag of the events created in [start, end) and the relay's publish rate over the window."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """
            WITH w AS (
                SELECT extract(epoch FROM published_at - created_at) * 1000 AS lag_ms
                FROM outbox_events
                WHERE created_at >= to_timestamp($1) AND created_at < to_timestamp($2)
                  AND published_at IS NOT NULL
            )
            SELECT count(*) AS n,
                   percentile_disc(0.5) WITHIN GROUP (ORDER BY lag_ms) AS p50,
                   percentile_disc(0.95) WITHIN GROUP (ORDER BY lag_ms) AS p95,
                   percentile_disc(0.99) WITHIN GROUP (ORDER BY lag_ms) AS p99,
                   max(lag_ms) AS max
            FROM w
            """,
            start,
            end,
        )
        published = await conn.fetchval(
            "SELECT count(*) FROM outbox_events WHERE published_at >= to_timestamp($1) AND published_at < to_timestamp($2)",
            start,
            end,
        )
        by_type = await conn.fetch(
            "SELECT type, count(*) AS n FROM outbox_events WHERE created_at >= to_timestamp($1) "
            "AND created_at < to_timestamp($2) GROUP BY 1 ORDER BY 2 DESC",
            start,
            end,
        )
    finally:
        await conn.close()
    assert row is not None
    return {
        "events": int(row["n"]),
        "lag_p50_ms": round(float(row["p50"] or 0), 1),
        "lag_p95_ms": round(float(row["p95"] or 0), 1),
        "lag_p99_ms": round(float(row["p99"] or 0), 1),
        "lag_max_ms": round(float(row["max"] or 0), 1),
        "published_per_s": round(published / (end - start), 1) if end > start else 0.0,
        "by_type": {r["type"]: int(r["n"]) for r in by_type},
    }


async def outbox_events(dsn: str, start: float, end: float) -> list[tuple[float, float | None]]:
    """(created_at, published_at) as epoch seconds of the events created in [start, end)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM created_at) AS c, extract(epoch FROM published_at) AS p FROM outbox_events "
            "WHERE created_at >= to_timestamp($1) AND created_at < to_timestamp($2)",
            start,
            end,
        )
    finally:
        await conn.close()
    return [(float(r["c"]), float(r["p"]) if r["p"] is not None else None) for r in rows]


async def unpublished(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox_events WHERE published_at IS NULL"))
    finally:
        await conn.close()


async def describe_unfinished(dsn: str, payment_ids: list[str]) -> dict[str, Any]:
    """Where the payments of flows that did not finish stand now: counts by (payment status,
    latest attempt status, has a customer action, status checks so far), and a few examples."""
    ids = [i for i in payment_ids if i]
    if not ids:
        return {"without_payment": len(payment_ids), "by_state": {}, "examples": []}
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT p.id, p.status, a.status AS attempt_status, a.provider, a.provider_payment_id IS NOT NULL AS known,
                   p.action IS NOT NULL AS has_action, a.sync_count, a.next_sync_at - now() AS next_sync_in,
                   a.error_code, now() - p.created_at AS age
            FROM payments p
            JOIN LATERAL (SELECT * FROM payment_attempts x WHERE x.payment_id = p.id ORDER BY x.number DESC LIMIT 1) a
              ON true
            WHERE p.id = ANY($1::uuid[])
            """,
            ids,
        )
    finally:
        await conn.close()
    by_state = Counter(
        f"{r['status']}/{r['attempt_status']}{'' if r['has_action'] else ' (no action)'} after {r['sync_count']} checks"
        for r in rows
    )
    examples = [
        f"{r['id']} {r['provider']} {r['status']}/{r['attempt_status']} known={r['known']} action={r['has_action']} "
        f"checks={r['sync_count']} next check in {r['next_sync_in']} error={r['error_code']} age={r['age']}"
        for r in rows[:5]
    ]
    return {"without_payment": len(payment_ids) - len(ids), "by_state": dict(by_state), "examples": examples}


async def analyze(dsn: str) -> None:
    """Refresh the planner's statistics of the service's database.

    The benchmark database is created empty a minute before the load: without statistics the
    planner plans for empty tables (sequential scans of the accounts and the outbox, cached as
    generic plans in long-lived connections), which a live database, analyzed by autovacuum, never
    sees. Measured on the posting scenario: Postgres CPU per wallet donation 1.2 ms without, 0.45 ms
    with statistics. Run before each scenario, as autovacuum would have by then.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def durability(dsn: str) -> dict[str, str]:
    """The server's durability settings as the service's database sees them (must stay on)."""
    conn = await asyncpg.connect(dsn)
    try:
        return {
            name: str(await conn.fetchval(f"SHOW {name}"))
            for name in ("fsync", "synchronous_commit", "full_page_writes", "server_version")
        }
    finally:
        await conn.close()
