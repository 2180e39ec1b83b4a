"""Inbox: apply each consumed event's effect exactly once; dead letters and their replay.

Invariants:

* :func:`process` writes the inbox row (unique ``(source, event_id)``) and runs the handler in
  the caller's transaction: the effect and the "seen" mark commit or roll back together, and
  the consumer commits the Kafka offset only after that transaction. A redelivered event
  finds its row and has no second effect.
* :func:`dead_letter` writes the ``dead_letters`` row and the ``<topic>.dlq`` copy (an outbox
  row) in one transaction; an event has at most one dead letter that is not yet replayed.
* :func:`replay` re-publishes the original message through the outbox (same event id, so the
  inbox still protects against doubles) and marks the dead letter replayed.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, overload

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.errors import BadRequest, Conflict, NotFound
from payment_service.inbox import repository
from payment_service.inbox.schemas import DeadLetterPage, DeadLetterRead, IncomingEvent
from payment_service.logging import correlation_id_var
from payment_service.models.inbox import DeadLetter
from payment_service.outbox import kafka as outbox_kafka
from payment_service.outbox import service as outbox_service


class DeadLetterNotFound(NotFound):
    code = "dead_letter_not_found"
    title = "No dead letter with this id"


class DeadLetterAlreadyReplayed(Conflict):
    code = "dead_letter_already_replayed"
    title = "This dead letter was already replayed"


class DeadLetterNotReplayable(Conflict):
    code = "dead_letter_not_replayable"
    title = "The dead-lettered message was not JSON and cannot be re-published"


class InvalidCursor(BadRequest):
    code = "invalid_cursor"
    title = "The pagination cursor is not one this API returned"


class PermanentError(Exception):
    """Raise from a handler when a retry cannot help: the event goes to the DLQ at once."""


Handler = Callable[[AsyncSession, IncomingEvent], Awaitable[None]]
"""A consumer handler: apply ``event``'s effect in ``session`` (never commit; raise to retry)."""

REPLAY_HEADER = "x-replay-of"
_ERROR_MAX = 4000


async def process(session: AsyncSession, event: IncomingEvent, handler: Handler) -> bool:
    """Run ``handler`` for ``event`` unless it was processed before; True when it ran.

    The caller owns the transaction (commit on return, roll back on any exception — the inbox
    row goes with it, so a failed attempt can be retried).
    """
    if not await repository.claim(session, source=event.source, event_id=event.id, type=event.type, topic=event.topic):
        return False
    token = correlation_id_var.set(event.correlation_id or event.id)
    try:
        await handler(session, event)
    finally:
        correlation_id_var.reset(token)
    return True


@overload
def _text(value: str, limit: int | None = None) -> str: ...
@overload
def _text(value: None, limit: int | None = None) -> None: ...
def _text(value: str | None, limit: int | None = None) -> str | None:
    """Postgres text and JSONB cannot hold NUL: replace it (and cut to ``limit``)."""
    if value is None:
        return None
    cleaned = value.replace("\x00", "\ufffd")
    return cleaned[:limit] if limit is not None else cleaned


def _value_for_storage(value: bytes | None) -> tuple[Any, str | None]:
    """(JSON value, None) when the message value is storable JSON, else (None, raw text).

    Raw text is the UTF-8 value, or ``base64:<…>`` when it is not UTF-8 or contains NUL.
    """
    if not value:
        return None, None
    if b"\x00" not in value and b"\\u0000" not in value:
        try:
            return orjson.loads(value), None
        except orjson.JSONDecodeError:
            pass
    try:
        text = value.decode("utf-8")
        if "\x00" not in text:
            return None, text
    except UnicodeDecodeError:
        pass
    return None, "base64:" + base64.b64encode(value).decode()


def describe_error(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:_ERROR_MAX]


async def dead_letter(
    session: AsyncSession,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: str | None,
    headers: Mapping[str, str],
    value: bytes | None,
    event: IncomingEvent | None,
    error: BaseException | str,
    attempts: int,
) -> uuid.UUID | None:
    """Record a message that could not be handled and queue its copy to ``<topic>.dlq``.

    ``topic`` is logical. Returns the dead letter's id, or None when this event already has an
    unreplayed dead letter (a redelivery after a crash): nothing is written then.
    """
    parsed, raw = _value_for_storage(value)
    message = _text(describe_error(error))
    headers = {_text(k): _text(v) for k, v in headers.items()}
    key = _text(key, 200)
    dead_letter_id = await repository.insert_dead_letter(
        session,
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        source=_text(event.source, 200) if event else None,
        event_id=_text(event.id, 200) if event else None,
        type=_text(event.type, 200) if event else None,
        headers=headers,
        value=parsed,
        raw=raw,
        error=message,
        attempts=attempts,
    )
    if dead_letter_id is None:
        return None
    dlq_headers = {
        **headers,
        "dlq_error": message[:1000],
        "dlq_attempts": str(attempts),
        "dlq_topic": topic,
        "dlq_partition": str(partition),
        "dlq_offset": str(offset),
        "dlq_dead_letter_id": str(dead_letter_id),
    }
    await outbox_service.forward(
        session,
        topic=outbox_kafka.dlq_topic(topic),
        key=key,
        value=parsed if raw is None else raw,
        headers=dlq_headers,
        type=event.type if event else "unknown",
        source=event.source if event else "unknown",
        version=(event.dataversion or 0) if event else 0,
        correlation_id=event.correlation_id if event else None,
    )
    return dead_letter_id


# ── admin ────────────────────────────────────────────────────────────────────────────────────


def _encode_cursor(item: DeadLetter) -> str:
    raw = f"{item.created_at.isoformat()}|{item.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, ident = raw.partition("|")
        created = datetime.fromisoformat(at)
        if created.tzinfo is None:
            raise ValueError("naive time")
        return created, uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursor() from None


async def list_dead_letters(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None = None,
    topic: str | None = None,
    replayed: bool | None = None,
) -> DeadLetterPage:
    """A page of dead letters, newest first. Raises InvalidCursor."""
    before = _decode_cursor(cursor) if cursor else None
    items = await repository.list_dead_letters(session, limit=limit + 1, before=before, topic=topic, replayed=replayed)
    has_more = len(items) > limit
    items = items[:limit]
    return DeadLetterPage(
        items=[DeadLetterRead.model_validate(item) for item in items],
        next_cursor=_encode_cursor(items[-1]) if has_more and items else None,
    )


async def get_dead_letter(session: AsyncSession, dead_letter_id: uuid.UUID) -> DeadLetter:
    """Raises DeadLetterNotFound."""
    item = await repository.get_dead_letter(session, dead_letter_id)
    if item is None:
        raise DeadLetterNotFound()
    return item


async def replay(session: AsyncSession, dead_letter_id: uuid.UUID, *, now: datetime, by: str) -> DeadLetter:
    """Queue the original message for re-publication to its topic and mark it replayed.

    The message keeps its CloudEvents id, so consumers that did process it meanwhile skip it.
    Raises DeadLetterNotFound, DeadLetterAlreadyReplayed, DeadLetterNotReplayable.
    """
    item = await repository.get_dead_letter(session, dead_letter_id, for_update=True)
    if item is None:
        raise DeadLetterNotFound()
    if item.replayed_at is not None:
        raise DeadLetterAlreadyReplayed(replayed_at=item.replayed_at.isoformat())
    if item.raw is not None:
        raise DeadLetterNotReplayable()
    headers = {**(item.headers or {}), REPLAY_HEADER: str(item.id)}
    await outbox_service.forward(
        session,
        topic=item.topic,
        key=item.key,
        value=item.value,
        headers=headers,
        type=item.type or "unknown",
        source=item.source or "unknown",
        correlation_id=(item.headers or {}).get("ce_correlationid"),
    )
    return await repository.mark_replayed(session, item.id, at=now, by=by)


async def prune_processed(session: AsyncSession, *, older_than: datetime, batch: int = 10_000) -> int:
    """Forget inbox rows older than ``older_than`` (longer ago than any redelivery can come)."""
    return await repository.delete_processed(session, older_than=older_than, batch=batch)
