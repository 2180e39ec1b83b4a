"""All SQL for ``outbox_events``.

Writers (``emit``) use the caller's SQLAlchemy session; the relay uses its own raw asyncpg
connection (the one that holds the leader lock and LISTENs), so its statements take ``$n``
parameters.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.db import wake_after_commit

NOTIFY_CHANNEL = "outbox"
LEADER_LOCK_NAME = "payment-service:outbox-relay"

# One round trip. The relay is woken after COMMIT by the process's CommitWaker, never by a NOTIFY
# inside this transaction (that would serialize every writer's commit: see db.py).
_INSERT = text(
    """
    INSERT INTO outbox_events (id, topic, key, type, version, source, payload, headers, correlation_id)
    VALUES (:id, :topic, :key, :type, :version, :source,
            CAST(:payload AS jsonb), CAST(:headers AS jsonb), :correlation_id)
    """
)


async def insert(
    session: AsyncSession,
    *,
    id: uuid.UUID,
    topic: str,
    key: str | None,
    type: str,
    version: int,
    source: str,
    payload_json: str,
    headers: dict[str, str] | None,
    correlation_id: str | None,
) -> None:
    await session.execute(
        _INSERT,
        {
            "id": id,
            "topic": topic,
            "key": key,
            "type": type,
            "version": version,
            "source": source,
            "payload": payload_json,
            "headers": orjson.dumps(headers).decode() if headers is not None else None,
            "correlation_id": correlation_id,
        },
    )
    wake_after_commit(session, NOTIFY_CHANNEL)


async def delete_published(session: AsyncSession, *, older_than: datetime, batch: int) -> int:
    result = await session.execute(
        text(
            """
            DELETE FROM outbox_events WHERE seq IN (
                SELECT seq FROM outbox_events WHERE published_at < :t ORDER BY published_at LIMIT :batch
            )
            """
        ),
        {"t": older_than, "batch": batch},
    )
    return int(getattr(result, "rowcount", 0) or 0)


# ── relay (raw asyncpg) ──────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An unpublished outbox row, as the relay reads it (``payload`` is the JSON text)."""

    seq: int
    id: uuid.UUID
    topic: str
    key: str | None
    type: str
    version: int
    source: str
    payload: str
    headers: dict[str, str] | None
    correlation_id: str | None
    created_at: datetime


_CLAIM = """
    SELECT seq, id, topic, key, type, version, source, payload::text AS payload, headers::text AS headers,
           correlation_id, created_at
    FROM outbox_events
    WHERE published_at IS NULL
    ORDER BY seq
    LIMIT $1
    FOR UPDATE SKIP LOCKED
"""


async def claim_batch(conn: asyncpg.Connection, *, limit: int) -> list[PendingEvent]:
    """Lock up to ``limit`` unpublished rows in ``seq`` order (call inside a transaction).

    Claims by ``published_at IS NULL``, never by a ``seq`` cursor: a row whose transaction
    commits late (its ``seq`` lower than rows already published) is still picked up.
    """
    rows = await conn.fetch(_CLAIM, limit)
    return [
        PendingEvent(
            seq=r["seq"],
            id=r["id"],
            topic=r["topic"],
            key=r["key"],
            type=r["type"],
            version=r["version"],
            source=r["source"],
            payload=r["payload"],
            headers=orjson.loads(r["headers"]) if r["headers"] is not None else None,
            correlation_id=r["correlation_id"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


async def mark_published(conn: asyncpg.Connection, seqs: list[int], *, at: datetime) -> None:
    await conn.execute(
        "UPDATE outbox_events SET published_at = $2, attempts = attempts + 1 WHERE seq = ANY($1::bigint[])",
        seqs,
        at,
    )


async def mark_failed(conn: asyncpg.Connection, seqs: list[int], *, error: str) -> None:
    await conn.execute(
        "UPDATE outbox_events SET attempts = attempts + 1, last_error = $2 WHERE seq = ANY($1::bigint[])",
        seqs,
        error[:2000],
    )


async def pending_stats(conn: asyncpg.Connection) -> tuple[int, datetime | None]:
    """How many rows wait to be published, and when the oldest was written."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox_events WHERE published_at IS NULL"
    )
    assert row is not None
    return int(row["n"]), row["oldest"]


async def try_lead(conn: asyncpg.Connection) -> bool:
    """Take the relay leader lock (session-level advisory lock) if nobody holds it.

    The lock lives as long as ``conn``: if the leader's connection dies, Postgres releases it
    and a standby takes over on its next try.
    """
    got = await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", LEADER_LOCK_NAME)
    return bool(got)


async def resign(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", LEADER_LOCK_NAME)
