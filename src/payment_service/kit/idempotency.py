"""Idempotency-Key claims stored in Postgres, in the same transaction as the work.

Design after Brandur Leach's Postgres idempotency keys (Stripe):

* keys are scoped per principal: the primary key is ``(principal, key)``;
* a request fingerprint (method, path, query, canonical JSON body) detects reuse of a key for a
  different request → :class:`IdempotencyKeyReused` (422);
* a concurrent duplicate is refused at once → :class:`IdempotencyKeyInUse` (409). While the
  first request's transaction is open, a transaction-scoped advisory lock on the key says so;
  after a ``db.checkpoint()`` (a provider call in flight) the row's ``locked_at`` says so, and a
  lock older than the timeout may be taken over by a retry (``Claim.resumed``) that continues
  from ``recovery_point``. Every claim holds the lock with a token of its own: a request whose
  claim was taken over (it outlived the timeout) can no longer record a recovery point, store its
  response or unlock the key — it gets 409 and the transaction in hand rolls back, so the key's
  stored response is the new holder's, and a late unlock never frees the new holder's lock
  (every ``db.checkpoint`` of the request checks the token too, :func:`check_fence`: work a
  taken-over request did since its last commit is rolled back, never committed beside the new
  holder's);
* a finished key replays the stored status, headers and body byte for byte;
* keys are pruned after the retention period (72 h) by :func:`prune`.

The claim costs one round trip for a new key.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.errors import BadRequest, Conflict, Unprocessable


class IdempotencyKeyMissing(BadRequest):
    code = "idempotency_key_missing"
    title = "This operation requires an Idempotency-Key header"


class IdempotencyKeyInvalid(BadRequest):
    code = "idempotency_key_invalid"
    title = "Idempotency-Key must be 1-255 printable ASCII characters"


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was already used for a different request"


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    title = "A request with this Idempotency-Key is still in progress; retry later"


@dataclass(frozen=True, slots=True)
class Claim:
    """The right to execute a request under a key."""

    id: uuid.UUID
    """Stable id of the key row: derive outgoing provider idempotency keys from it."""
    principal: str
    key: str
    resumed: bool
    """True when a stale in-progress key was taken over (continue from ``recovery_point``)."""
    recovery_point: str
    token: uuid.UUID
    """This claim's hold on the key's lock (``idempotency_keys.lock_token``)."""


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    """A mutating request under an Idempotency-Key, before any claim: what a one-statement fast
    path (which claims, works and stores the response in a single SQL function) needs."""

    principal: str
    key: str
    method: str
    path: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def validate_key(raw: str | None, *, max_length: int) -> str:
    if raw is None:
        raise IdempotencyKeyMissing()
    key = raw.strip()
    if not key or len(key) > max_length or not key.isascii() or not key.isprintable():
        raise IdempotencyKeyInvalid()
    return key


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """Hash of the request; JSON bodies are canonicalised so whitespace/key order don't matter."""
    canonical = body
    if body:
        try:
            canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONDecodeError:
            canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


_CLAIM_NEW = text(
    """
    WITH lock AS (
        SELECT pg_try_advisory_xact_lock(hashtextextended(:principal || chr(1) || :key, 0)) AS got
    ), ins AS (
        INSERT INTO idempotency_keys (principal, key, id, method, path, fingerprint, locked_at, lock_token,
                                      created_at)
        SELECT :principal, :key, :id, :method, :path, :fingerprint, :now, :token, :now FROM lock WHERE got
        ON CONFLICT (principal, key) DO NOTHING
        RETURNING id
    )
    SELECT (SELECT got FROM lock) AS got, (SELECT id FROM ins) AS inserted
    """
)

_LOAD = text(
    """
    SELECT id, fingerprint, locked_at, recovery_point, response_status, response_headers, response_body
    FROM idempotency_keys WHERE principal = :principal AND key = :key FOR UPDATE
    """
)


async def claim(
    session: AsyncSession,
    *,
    principal: str,
    key: str,
    method: str,
    path: str,
    request_fingerprint: str,
    now: datetime,
    lock_timeout: timedelta,
) -> Claim | StoredResponse:
    """Claim ``key`` for this request, or return the stored response of a finished one.

    Raises IdempotencyKeyInUse (another request holds it) or IdempotencyKeyReused (the key was
    used for a different request). Runs inside the request's transaction.
    """
    new_id = uuid.uuid4()
    token = uuid.uuid4()
    row = (
        await session.execute(
            _CLAIM_NEW,
            {
                "principal": principal,
                "key": key,
                "id": new_id,
                "method": method,
                "path": path[:512],
                "fingerprint": request_fingerprint,
                "now": now,
                "token": token,
            },
        )
    ).one()
    if not row.got:
        raise IdempotencyKeyInUse()
    if row.inserted is not None:
        return Claim(
            id=row.inserted, principal=principal, key=key, resumed=False, recovery_point="started", token=token
        )

    existing = (await session.execute(_LOAD, {"principal": principal, "key": key})).one()
    if existing.fingerprint != request_fingerprint:
        raise IdempotencyKeyReused()
    if existing.response_status is not None:
        return StoredResponse(
            status=existing.response_status,
            headers=dict(existing.response_headers or {}),
            body=bytes(existing.response_body or b""),
        )
    if existing.locked_at is not None and existing.locked_at > now - lock_timeout:
        raise IdempotencyKeyInUse(retry_after=max(1, int(lock_timeout.total_seconds() // 4)))
    await session.execute(
        text(
            "UPDATE idempotency_keys SET locked_at = :now, lock_token = :token "
            "WHERE principal = :principal AND key = :key"
        ),
        {"now": now, "token": token, "principal": principal, "key": key},
    )
    return Claim(
        id=existing.id,
        principal=principal,
        key=key,
        resumed=True,
        recovery_point=existing.recovery_point,
        token=token,
    )


def _held(row: object) -> None:
    """Raise when an update of the claim's own row (``RETURNING 1``) matched nothing: the claim
    was taken over by a retry, which now holds the key."""
    if row is None:
        raise IdempotencyKeyInUse(retry_after=1)


_FENCE = "idempotency_fence"
_FENCED = "idempotency_fenced_in_transaction"


def fence_commits(session: AsyncSession, claim_: Claim) -> None:
    """Make every ``db.checkpoint`` of ``session`` check that ``claim_`` still holds its key. Call
    right after :func:`claim`: its statement locked the key's row for the open transaction."""
    session.info[_FENCE] = claim_
    session.info[_FENCED] = True


def forget_fence_check(info: dict[Any, Any]) -> None:
    """The transaction (or savepoint) that checked the token ended: the next one checks again
    (``db``'s session listeners call this on every commit and rollback)."""
    info.pop(_FENCED, None)


async def check_fence(session: AsyncSession) -> None:
    """Before a checkpoint's commit: raise IdempotencyKeyInUse (the caller's transaction then rolls
    back) when the session's claim was taken over. Free when this transaction already holds the
    key's row (the claim itself, :func:`set_recovery_point`) or has nothing open; otherwise one
    round trip that locks the row until the commit (``FOR NO KEY UPDATE``: a takeover waits)."""
    claim_: Claim | None = session.info.get(_FENCE)
    if claim_ is None or session.info.get(_FENCED) or not session.in_transaction():
        return
    try:
        result = await session.execute(
            text(
                "SELECT 1 FROM idempotency_keys "
                "WHERE principal = :principal AND key = :key AND lock_token = :token FOR NO KEY UPDATE"
            ),
            {"principal": claim_.principal, "key": claim_.key, "token": claim_.token},
        )
    except sqlalchemy.exc.DBAPIError as exc:
        # the takeover locks the key first and the payment second, a late checkpoint the other way
        if _sqlstate(exc) == "40P01":
            raise IdempotencyKeyInUse(retry_after=1) from exc
        raise
    _held(result.first())
    session.info[_FENCED] = True


def _sqlstate(exc: sqlalchemy.exc.DBAPIError) -> str | None:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(code) if code else None


async def set_recovery_point(session: AsyncSession, claim_: Claim, point: str, *, now: datetime | None = None) -> None:
    """Record progress of a multi-phase request (commit it with ``db.checkpoint``).

    With ``now`` the in-progress lock is renewed too, so a long request is not taken over by a
    retry while it is still working. Raises IdempotencyKeyInUse when the claim was taken over.
    """
    result = await session.execute(
        text(
            "UPDATE idempotency_keys SET recovery_point = :p, locked_at = COALESCE(CAST(:now AS timestamptz), locked_at) "
            "WHERE principal = :principal AND key = :key AND lock_token = :token RETURNING 1"
        ),
        {"p": point, "now": now, "principal": claim_.principal, "key": claim_.key, "token": claim_.token},
    )
    _held(result.first())
    session.info[_FENCED] = True  # the row is locked and ours until this transaction ends


async def complete(session: AsyncSession, claim_: Claim, response: StoredResponse, *, now: datetime) -> None:
    """Store the final response in the same transaction as the work and unlock the key.

    Raises IdempotencyKeyInUse when the claim was taken over meanwhile: the caller must roll the
    work back (the request that took the key over finishes it).
    """
    result = await session.execute(
        text(
            """
            UPDATE idempotency_keys
            SET response_status = :status, response_headers = CAST(:headers AS jsonb),
                response_body = :body, locked_at = NULL, lock_token = NULL, completed_at = :now,
                recovery_point = 'finished'
            WHERE principal = :principal AND key = :key AND lock_token = :token
            RETURNING 1
            """
        ),
        {
            "status": response.status,
            "headers": orjson.dumps(response.headers).decode(),
            "body": response.body,
            "now": now,
            "principal": claim_.principal,
            "key": claim_.key,
            "token": claim_.token,
        },
    )
    _held(result.first())


async def release(session: AsyncSession, claim_: Claim) -> None:
    """Unlock a key whose request failed after a checkpoint, so a retry may proceed at once (a no-op
    when the claim was taken over: the new holder keeps its lock)."""
    await session.execute(
        text(
            "UPDATE idempotency_keys SET locked_at = NULL, lock_token = NULL "
            "WHERE principal = :principal AND key = :key AND lock_token = :token AND response_status IS NULL"
        ),
        {"principal": claim_.principal, "key": claim_.key, "token": claim_.token},
    )


async def prune(session: AsyncSession, *, older_than: datetime, batch: int = 5000) -> int:
    """Delete keys created before ``older_than``; returns how many were deleted."""
    result = await session.execute(
        text(
            """
            DELETE FROM idempotency_keys WHERE ctid IN (
                SELECT ctid FROM idempotency_keys WHERE created_at < :t LIMIT :batch
            )
            """
        ),
        {"t": older_than, "batch": batch},
    )
    return int(getattr(result, "rowcount", 0) or 0)
