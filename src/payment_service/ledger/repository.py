"""All SQL of the ledger. Postings go through the PL/pgSQL functions of migration ``0002_ledger``.

Statements are positional ``$n`` SQL sent straight to the driver: through an ``AsyncSession``
(``exec_driver_sql``, inside the session's transaction) or on a bare asyncpg connection (a
posting is one statement, hence atomic even in autocommit: one round trip in total). Every
function here is one round trip. Balances of hot accounts are read as the row plus the not yet
folded deltas *in one statement*, so the snapshot is consistent with the fold job (which deletes
deltas and updates the row in one transaction).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.ledger.accounts import AccountSpec


class DriverConnection(Protocol):
    """An asyncpg connection (or pool proxy): what :data:`Executor` accepts besides a session."""

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...


Executor = AsyncSession | DriverConnection
"""Where a statement runs: the caller's AsyncSession (its transaction), or an asyncpg connection."""

Record = Mapping[Any, Any]


async def _fetch(executor: Executor, query: str, *args: Any) -> list[Record]:
    if isinstance(executor, AsyncSession):
        connection = await executor.connection()
        return list((await connection.exec_driver_sql(query, args)).mappings().all())
    return list(await executor.fetch(query, *args))


async def _fetchrow(executor: Executor, query: str, *args: Any) -> Record | None:
    if isinstance(executor, AsyncSession):
        connection = await executor.connection()
        return (await connection.exec_driver_sql(query, args)).mappings().one_or_none()
    row: Record | None = await executor.fetchrow(query, *args)
    return row


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def parse_json(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    parsed = orjson.loads(raw)
    return parsed if isinstance(parsed, dict) else None


# ---- postings -------------------------------------------------------------------------------------

_POST = (
    "SELECT status, transfer_id, detail::text AS detail FROM ledger_post("
    "$1::uuid, $2::text, $3::text, $4::text, NULL, NULL, $5::text, $6::text, $7::jsonb, $8::timestamptz, "
    "$9::timestamptz, $10::uuid[], $11::bigint[], $12::text[], $13::uuid[], $14::bigint[])"
)

_RESOLVE_HOLD = (
    "SELECT status, transfer_id, detail::text AS detail FROM ledger_resolve_hold("
    "$1::uuid, $2::text, $3::uuid, $4::text, $5::text, $6::text, $7::text, $8::jsonb, $9::timestamptz, "
    "$10::uuid[], $11::bigint[])"
)

_REVERSE = (
    "SELECT status, transfer_id, detail::text AS detail FROM ledger_reverse("
    "$1::uuid, $2::uuid, $3::text, $4::text, $5::text, $6::text, $7::jsonb, $8::timestamptz)"
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a posting function returned: a status, the transfer id, details of a rejection."""

    status: str
    transfer_id: uuid.UUID | None
    detail: dict[str, Any]


async def _outcome(executor: Executor, query: str, *args: Any) -> Outcome:
    row = await _fetchrow(executor, query, *args)
    assert row is not None
    return Outcome(row["status"], row["transfer_id"], parse_json(row["detail"]) or {})


async def call_post(
    executor: Executor,
    *,
    id: uuid.UUID,
    key: str,
    fingerprint: str,
    kind: str,
    reference: str,
    reason: str,
    metadata: dict[str, Any] | None,
    effective_at: datetime,
    expires_at: datetime | None,
    accounts: Sequence[uuid.UUID],
    amounts: Sequence[int],
    phases: Sequence[str],
    ceiling_accounts: Sequence[uuid.UUID] | None,
    ceilings: Sequence[int] | None,
) -> Outcome:
    return await _outcome(
        executor,
        _POST,
        id,
        key,
        fingerprint,
        kind,
        reference,
        reason,
        _json(metadata),
        effective_at,
        expires_at,
        list(accounts),
        list(amounts),
        list(phases),
        list(ceiling_accounts) if ceiling_accounts else None,
        list(ceilings) if ceilings else None,
    )


async def call_resolve_hold(
    executor: Executor,
    *,
    hold_id: uuid.UUID,
    action: str,
    id: uuid.UUID,
    key: str,
    fingerprint: str,
    reference: str | None,
    reason: str | None,
    metadata: dict[str, Any] | None,
    effective_at: datetime,
    accounts: Sequence[uuid.UUID] | None,
    amounts: Sequence[int] | None,
) -> Outcome:
    return await _outcome(
        executor,
        _RESOLVE_HOLD,
        hold_id,
        action,
        id,
        key,
        fingerprint,
        reference,
        reason,
        _json(metadata),
        effective_at,
        list(accounts) if accounts is not None else None,
        list(amounts) if amounts is not None else None,
    )


async def call_reverse(
    executor: Executor,
    *,
    orig_id: uuid.UUID,
    id: uuid.UUID,
    key: str,
    fingerprint: str,
    reference: str | None,
    reason: str | None,
    metadata: dict[str, Any] | None,
    effective_at: datetime,
) -> Outcome:
    return await _outcome(
        executor, _REVERSE, orig_id, id, key, fingerprint, reference, reason, _json(metadata), effective_at
    )


# ---- accounts -------------------------------------------------------------------------------------

_INSERT_ACCOUNTS = """
    INSERT INTO ledger_accounts (id, code, currency, type, normal_balance, allow_negative, hot)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::boolean[])
    ON CONFLICT DO NOTHING
    RETURNING id
"""


async def insert_accounts(executor: Executor, specs: Sequence[AccountSpec]) -> None:
    await _fetch(
        executor,
        _INSERT_ACCOUNTS,
        [s.id for s in specs],
        [s.code for s in specs],
        [s.currency for s in specs],
        [str(s.type) for s in specs],
        [str(s.normal_balance) for s in specs],
        [s.allow_negative for s in specs],
        [s.hot for s in specs],
    )


async def lock_accounts(executor: Executor, ids: Sequence[uuid.UUID]) -> None:
    await _fetch(
        executor, "SELECT id FROM ledger_accounts WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE", list(ids)
    )


# ---- reads ----------------------------------------------------------------------------------------

_BALANCES = """
    SELECT a.id, a.code, a.currency, a.normal_balance, a.version,
           a.posted + coalesce(d.posted, 0) AS posted,
           a.pending_debits + coalesce(d.pending_debits, 0) AS pending_debits,
           a.pending_credits + coalesce(d.pending_credits, 0) AS pending_credits
      FROM ledger_accounts a
      LEFT JOIN LATERAL (
          SELECT sum(x.posted)::bigint AS posted, sum(x.pending_debits)::bigint AS pending_debits,
                 sum(x.pending_credits)::bigint AS pending_credits
            FROM ledger_account_deltas x WHERE x.account_id = a.id
      ) d ON a.hot
     WHERE a.id = ANY($1::uuid[])
"""

_BALANCE_AT = """
    SELECT a.id, a.code, a.currency, a.normal_balance, 0 AS version,
           coalesce(sum(e.amount) FILTER (WHERE e.phase = 'posted'), 0)::bigint AS posted,
           coalesce(sum(CASE WHEN e.phase = 'pending' AND e.amount < 0 THEN -e.amount
                             WHEN e.phase = 'released' AND e.amount > 0 THEN -e.amount END), 0)::bigint
               AS pending_debits,
           coalesce(sum(CASE WHEN e.phase = 'pending' AND e.amount > 0 THEN e.amount
                             WHEN e.phase = 'released' AND e.amount < 0 THEN e.amount END), 0)::bigint
               AS pending_credits
      FROM ledger_accounts a
      LEFT JOIN ledger_entries e ON e.account_id = a.id AND e.effective_at <= $2::timestamptz
     WHERE a.id = $1::uuid
     GROUP BY a.id
"""

_TRANSFER_COLUMNS = """
    SELECT t.id, t.kind, t.idempotency_key, t.reference, t.reason, t.effective_at, t.pending_id,
           t.reverses_id, t.metadata::text AS metadata
      FROM ledger_transfers t
"""

_ENTRIES_OF = """
    SELECT e.transfer_id, e.account_id, a.code, e.amount, e.currency, e.phase
      FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
     WHERE e.transfer_id = ANY($1::uuid[])
     ORDER BY e.id
"""

_HOLD = """
    SELECT h.transfer_id, h.status, h.expires_at, h.resolved_by, t.reference
      FROM ledger_holds h JOIN ledger_transfers t ON t.id = h.transfer_id
     WHERE h.transfer_id = $1::uuid
"""

_HISTORY = """
    SELECT e.id, e.transfer_id, t.kind, e.phase, e.amount, e.currency, t.reason, t.reference,
           t.metadata::text AS metadata, e.effective_at, h.status AS hold_status
      FROM ledger_entries e
      JOIN ledger_transfers t ON t.id = e.transfer_id
      LEFT JOIN ledger_holds h ON h.transfer_id = e.transfer_id AND e.phase = 'pending'
     WHERE e.account_id = $1::uuid
       AND ($2::bigint IS NULL OR e.id < $2::bigint)
       AND ($3::boolean OR e.phase = 'posted' OR (e.phase = 'pending' AND h.status = 'pending'))
     ORDER BY e.id DESC
     LIMIT $4::integer
"""

_CREDITED_SINCE = """
    SELECT coalesce(sum(e.amount), 0)::bigint AS total
      FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
     WHERE e.account_id = $1::uuid AND e.phase = 'posted' AND e.effective_at >= $3::timestamptz
       AND t.reason = ANY($2::text[]) AND t.kind IN ('transfer', 'post')
"""


async def balances(executor: Executor, ids: Sequence[uuid.UUID]) -> list[Record]:
    return await _fetch(executor, _BALANCES, list(ids))


async def balance_at(executor: Executor, id: uuid.UUID, at: datetime) -> Record | None:
    return await _fetchrow(executor, _BALANCE_AT, id, at)


async def transfers(
    executor: Executor, *, ids: Sequence[uuid.UUID] | None = None, reference: str | None = None
) -> tuple[list[Record], list[Record]]:
    """Transfer rows (by ids or by business reference) and their entries, in creation order."""
    if ids is not None:
        query = _TRANSFER_COLUMNS + " WHERE t.id = ANY($1::uuid[]) ORDER BY t.created_at, t.id"
        rows = await _fetch(executor, query, list(ids))
    else:
        query = _TRANSFER_COLUMNS + " WHERE t.reference = $1::text ORDER BY t.created_at, t.id"
        rows = await _fetch(executor, query, reference)
    if not rows:
        return [], []
    return rows, await _fetch(executor, _ENTRIES_OF, [r["id"] for r in rows])


async def transfer_id_by_key(executor: Executor, key: str) -> uuid.UUID | None:
    row = await _fetchrow(executor, "SELECT id FROM ledger_transfers WHERE idempotency_key = $1::text", key)
    return row["id"] if row is not None else None


async def hold(executor: Executor, id: uuid.UUID) -> Record | None:
    return await _fetchrow(executor, _HOLD, id)


async def history(
    executor: Executor, *, account_id: uuid.UUID, before: int | None, limit: int, all_phases: bool
) -> list[Record]:
    return await _fetch(executor, _HISTORY, account_id, before, all_phases, limit)


async def credited_since(executor: Executor, *, account_id: uuid.UUID, reasons: Sequence[str], since: datetime) -> int:
    row = await _fetchrow(executor, _CREDITED_SINCE, account_id, list(reasons), since)
    return int(row["total"]) if row is not None else 0


# ---- jobs -----------------------------------------------------------------------------------------


_FOLD = """
    SELECT (SELECT count(*) FROM ledger_account_deltas) AS backlog,
           (SELECT coalesce(EXTRACT(EPOCH FROM ($1::timestamptz - min(created_at))) * 1000, 0)::bigint
              FROM ledger_account_deltas) AS oldest_age_ms,
           CASE WHEN pg_try_advisory_xact_lock(hashtextextended('ledger_fold', 0))
                THEN ledger_fold_deltas($2::integer) ELSE -1 END AS folded
"""


async def fold_deltas(executor: Executor, *, now: datetime, max_accounts: int) -> Record:
    """One statement (so one transaction even in autocommit): one folder at a time, then fold."""
    row = await _fetchrow(executor, _FOLD, now, max_accounts)
    assert row is not None
    return row


async def expired_holds(executor: Executor, *, now: datetime, limit: int) -> list[uuid.UUID]:
    rows = await _fetch(
        executor,
        "SELECT transfer_id FROM ledger_holds WHERE status = 'pending' AND expires_at <= $1::timestamptz "
        "ORDER BY expires_at LIMIT $2::integer",
        now,
        limit,
    )
    return [r["transfer_id"] for r in rows]
