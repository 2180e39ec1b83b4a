"""Transactional outbox: record an event in the caller's transaction; the relay publishes it.

Invariants:

* :func:`emit` only INSERTs one row (one round trip; the process's ``CommitWaker`` wakes the relay
  after COMMIT, see ``db.wake_after_commit``); it never talks to Kafka. If the transaction rolls back, the event
  never existed.
* Services never publish directly: everything that leaves the service is an outbox row.
* Delivery is at least once, in ``seq`` order per key; consumers dedupe on the event id.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.logging import correlation_id_var
from payment_service.outbox import repository
from payment_service.outbox.events import Event

WAKE_CHANNEL = repository.NOTIFY_CHANNEL
"""The relay's wake-up channel, for writers outside a session (``CommitWaker.wake`` after their commit)."""

SOURCE = "payment-service"
"""CloudEvents ``source`` of every event this service emits."""

_KEY_MAX = 200


def _key(key: str | uuid.UUID | int) -> str:
    value = str(key)
    if not value or len(value) > _KEY_MAX:
        raise ValueError(f"outbox key must be 1-{_KEY_MAX} characters")
    return value


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An event as its outbox row (what :func:`emit` inserts). Composite SQL functions of other
    modules that do a whole operation in one statement insert it themselves."""

    id: uuid.UUID
    topic: str
    key: str
    type: str
    version: int
    source: str
    payload_json: str
    correlation_id: str | None


def row_of(event: Event, *, key: str | uuid.UUID | int, correlation_id: str | None = None) -> OutboxRow:
    """The outbox row of ``event`` (see :func:`emit` for ``key`` and ``correlation_id``)."""
    return OutboxRow(
        id=uuid.uuid4(),
        topic=event.topic,
        key=_key(key),
        type=event.type,
        version=event.version,
        source=SOURCE,
        payload_json=event.model_dump_json(),
        correlation_id=correlation_id if correlation_id is not None else correlation_id_var.get(),
    )


async def emit(
    session: AsyncSession,
    event: Event,
    *,
    key: str | uuid.UUID | int,
    correlation_id: str | None = None,
) -> uuid.UUID:
    """Record ``event`` for publication to ``event.topic`` with Kafka key ``key``; returns its id.

    ``key`` is the aggregate id (payment id, wallet id …): events with the same key are published
    in the order they were emitted. ``correlation_id`` defaults to the one of the current request
    or job (``logging.correlation_id_var``). Runs in the caller's transaction; the caller commits.
    """
    row = row_of(event, key=key, correlation_id=correlation_id)
    await repository.insert(
        session,
        id=row.id,
        topic=row.topic,
        key=row.key,
        type=row.type,
        version=row.version,
        source=row.source,
        payload_json=row.payload_json,
        headers=None,
        correlation_id=row.correlation_id,
    )
    return row.id


async def forward(
    session: AsyncSession,
    *,
    topic: str,
    key: str | None,
    value: Any,
    headers: Mapping[str, str],
    type: str,
    source: str,
    version: int = 0,
    correlation_id: str | None = None,
) -> uuid.UUID:
    """Record an already-formed message (its JSON ``value`` and Kafka ``headers``) for publication.

    For copies of consumed events: dead-letter copies to ``<topic>.dlq`` and admin replays. The
    relay publishes ``value`` with exactly ``headers`` (the original CloudEvents attributes), so
    the event keeps its id and consumers' inboxes still recognise it. Same transaction rules as
    :func:`emit`.
    """
    row_id = uuid.uuid4()
    await repository.insert(
        session,
        id=row_id,
        topic=topic,
        key=key,
        type=type,
        version=version,
        source=source,
        payload_json=orjson.dumps(value).decode(),
        headers=dict(headers),
        correlation_id=correlation_id,
    )
    return row_id


async def prune_published(session: AsyncSession, *, older_than: datetime, batch: int = 10_000) -> int:
    """Delete rows the broker acknowledged before ``older_than``; returns how many were deleted."""
    return await repository.delete_published(session, older_than=older_than, batch=batch)
