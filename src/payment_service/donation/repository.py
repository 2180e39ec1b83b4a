"""All SQL for donations, the per-streamer alert log and overlay tokens."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.kit.idempotency import KeyedRequest
from payment_service.ledger.repository import DriverConnection
from payment_service.ledger.service import PreparedTransfer
from payment_service.models.donation import Donation, DonationStreamer
from payment_service.outbox.service import OutboxRow


async def add(session: AsyncSession, donation: Donation) -> None:
    session.add(donation)
    await session.flush()


async def get(session: AsyncSession, donation_id: uuid.UUID, *, lock: bool = False) -> Donation | None:
    # populate_existing: after a checkpoint the row may have been changed by the hook or others.
    stmt = select(Donation).where(Donation.id == donation_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_payment(session: AsyncSession, payment_id: uuid.UUID, *, lock: bool = False) -> Donation | None:
    stmt = select(Donation).where(Donation.payment_id == payment_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_request_key(session: AsyncSession, request_key: uuid.UUID) -> Donation | None:
    stmt = select(Donation).where(Donation.request_key == request_key).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_external_ref(session: AsyncSession, external_ref: str) -> Donation | None:
    return (await session.execute(select(Donation).where(Donation.external_ref == external_ref))).scalar_one_or_none()


# ---- a wallet donation in one statement ---------------------------------------------------------

_CREATE_FROM_WALLET = (
    "SELECT status, seq, body, detail::text AS detail FROM donation_create_from_wallet("
    "$1::text, $2::text, $3::uuid, $4::text, $5::text, $6::text, $7::timestamptz, $8::smallint, $9::jsonb, "
    "$10::bytea, $11::bytea, $12::jsonb, "
    "$13::uuid, $14::text, $15::text, $16::text, $17::text, $18::jsonb, $19::uuid[], $20::bigint[], $21::text[], "
    "$22::uuid, $23::text, $24::text, $25::text, $26::integer, $27::text, $28::jsonb, $29::text)"
)


@dataclass(frozen=True, slots=True)
class WalletOutcome:
    """What ``donation_create_from_wallet`` returned: ``created`` with the alert position and the
    stored response body, or why nothing was written (``key_busy``, ``key_exists``, a ledger
    status such as ``insufficient_funds`` or ``unknown_accounts``, with its ``detail``)."""

    status: str
    seq: int | None
    body: bytes | None
    detail: Mapping[str, Any]


def _row_json(donation: Donation) -> str:
    """Every column of the donation row as JSON (``jsonb_populate_record`` reads it back)."""
    return orjson.dumps({c.name: getattr(donation, c.key) for c in Donation.__mapper__.columns}).decode()


async def create_from_wallet(
    conn: DriverConnection,
    *,
    request: KeyedRequest,
    key_id: uuid.UUID,
    now: datetime,
    response_status: int,
    response_headers: Mapping[str, str],
    body_head: bytes,
    body_tail: bytes,
    donation: Donation,
    transfer: PreparedTransfer,
    event: OutboxRow,
) -> WalletOutcome:
    """Claim the key, post the split, append the alert, record the event and the response: one
    statement on a connection outside any transaction (it is its own transaction)."""
    t = transfer.params
    # The SQL function posts a plain transfer effective now: nothing else may be asked of it.
    if t["kind"] != "transfer" or t["expires_at"] is not None or t["ceiling_accounts"] or t["effective_at"] != now:
        raise ValueError("donation_create_from_wallet posts only a plain transfer effective now")
    row = await conn.fetchrow(
        _CREATE_FROM_WALLET,
        request.principal,
        request.key,
        key_id,
        request.method,
        request.path[:512],
        request.fingerprint,
        now,
        response_status,
        orjson.dumps(dict(response_headers)).decode(),
        body_head,
        body_tail,
        _row_json(donation),
        t["id"],
        t["key"],
        t["fingerprint"],
        t["reference"],
        t["reason"],
        orjson.dumps(t["metadata"]).decode() if t["metadata"] is not None else None,
        t["accounts"],
        t["amounts"],
        t["phases"],
        event.id,
        event.topic,
        event.key,
        event.type,
        event.version,
        event.source,
        event.payload_json,
        event.correlation_id,
    )
    detail = orjson.loads(row["detail"]) if row["detail"] else {}
    return WalletOutcome(row["status"], row["seq"], row["body"], detail if isinstance(detail, dict) else {})


# ---- the alert log ------------------------------------------------------------------------------

_NEXT_SEQ = text(
    """
    INSERT INTO donation_streamers AS s (streamer_id, last_alert_seq, created_at, updated_at)
    VALUES (:streamer_id, 1, :now, :now)
    ON CONFLICT (streamer_id) DO UPDATE
        SET last_alert_seq = s.last_alert_seq + 1, updated_at = EXCLUDED.updated_at
    RETURNING last_alert_seq
    """
)


async def next_alert_seq(session: AsyncSession, *, streamer_id: str, now: datetime) -> int:
    """The next position in the streamer's alert log (one round trip; row-locked until commit)."""
    return int((await session.execute(_NEXT_SEQ, {"streamer_id": streamer_id, "now": now})).scalar_one())


async def last_alert_seq(session: AsyncSession, streamer_id: str) -> int:
    stmt = select(DonationStreamer.last_alert_seq).where(DonationStreamer.streamer_id == streamer_id)
    return int((await session.execute(stmt)).scalar_one_or_none() or 0)


async def alerts_after(session: AsyncSession, *, streamer_id: str, after: int, limit: int) -> Sequence[Donation]:
    """Processed donations of the streamer with ``alert_seq > after``, in log order."""
    stmt = (
        select(Donation)
        .where(Donation.streamer_id == streamer_id, Donation.alert_seq > after)
        .order_by(Donation.alert_seq)
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()


async def mark_published(session: AsyncSession, ids: Sequence[uuid.UUID]) -> Sequence[Donation]:
    """Mark the committed, not yet published alerts among ``ids`` as published and return them.

    Donations whose transaction rolled back (no ``alert_seq``) and alerts already published by
    someone else are not returned. Rows stay locked until the caller commits.
    """
    if not ids:
        return []
    stmt = (
        update(Donation)
        .where(Donation.id.in_(ids), Donation.alert_seq.is_not(None), Donation.alert_published_at.is_(None))
        .values(alert_published_at=func.now())
        .returning(Donation)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).scalars().all()


async def mark_published_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
    """Mark alerts published after the fast path published them (one statement, nothing returned)."""
    if ids:
        await session.execute(
            text(
                "UPDATE donations SET alert_published_at = now()"
                " WHERE id = ANY(CAST(:ids AS uuid[])) AND alert_published_at IS NULL"
            ),
            {"ids": list(ids)},
        )


async def claim_unpublished(session: AsyncSession, *, processed_before: datetime, limit: int) -> Sequence[Donation]:
    """Alerts committed before ``processed_before`` and still unpublished; locked (SKIP LOCKED) and
    marked published in this transaction (rolled back with it if publishing fails)."""
    ids = (
        (
            await session.execute(
                select(Donation.id)
                .where(
                    Donation.alert_seq.is_not(None),
                    Donation.alert_published_at.is_(None),
                    Donation.processed_at < processed_before,
                )
                .order_by(Donation.processed_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    return await mark_published(session, ids)


# ---- streamers and overlay tokens ---------------------------------------------------------------


async def set_overlay_token_hash(session: AsyncSession, *, streamer_id: str, token_hash: str, now: datetime) -> None:
    stmt = (
        insert(DonationStreamer)
        .values(
            streamer_id=streamer_id,
            last_alert_seq=0,
            overlay_token_hash=token_hash,
            overlay_token_rotated_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=[DonationStreamer.streamer_id],
            set_={"overlay_token_hash": token_hash, "overlay_token_rotated_at": now, "updated_at": now},
        )
    )
    await session.execute(stmt)


async def streamer_by_token_hash(session: AsyncSession, token_hash: str) -> str | None:
    stmt = select(DonationStreamer.streamer_id).where(DonationStreamer.overlay_token_hash == token_hash)
    return (await session.execute(stmt)).scalar_one_or_none()
