"""The double-entry ledger: the only way money moves.

Guarantees, for every function that posts:

* a transfer is balanced per currency and phase, immutable, and applied atomically (all its
  entries and balance changes, or nothing) in ONE database round trip (a PL/pgSQL function);
* an idempotency key identifies the operation: a retry with the same key and content returns the
  first transfer (``replayed=True``) and changes nothing; the same key with other content is
  :class:`LedgerIdempotencyConflict`;
* an account that may not go negative never does (available = posted − pending outgoing), and
  a ceiling passed by the caller is enforced under the same lock;
* accounts are locked in id order, so two postings never deadlock each other; credit-side
  changes of hot accounts take no lock at all (appended deltas, folded by ``tasks.fold_deltas``).

Business rejections leave the transaction usable (nothing was written). A deadlock or
serialization failure caused by other work in the caller's transaction aborts it and surfaces
as :class:`LedgerBusy` (retryable); :func:`run_in_transaction` retries whole transactions.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment_service.errors import AppError, Conflict, NotFound, ServiceUnavailable, Unprocessable
from payment_service.kit.money import Money, MoneyValue
from payment_service.ledger import repository
from payment_service.ledger.accounts import AccountSpec
from payment_service.ledger.repository import Executor, Outcome, Record
from payment_service.ledger.schemas import Balance, HistoryLine, HistoryPage, Hold, Leg, Posting, Transfer
from payment_service.models.ledger import EntryPhase, HoldStatus, NormalBalance, TransferKind

T = TypeVar("T")

RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
"""Deadlock detected, serialization failure."""


# ---- errors ---------------------------------------------------------------------------------------


class LedgerBusy(ServiceUnavailable):
    code = "ledger_busy"
    title = "The ledger could not apply the operation because of concurrent work; retry"


class LedgerIdempotencyConflict(Conflict):
    code = "ledger_idempotency_conflict"
    title = "This ledger idempotency key was already used for a different operation"


class AccountNotFound(NotFound):
    code = "ledger_account_not_found"
    title = "Ledger account not found"


class InsufficientFunds(Conflict):
    """An account that may not go negative lacks ``shortfall`` to cover the operation."""

    code = "insufficient_funds"
    title = "Insufficient funds"

    def __init__(self, *, account_code: str, available: Money, required: Money) -> None:
        self.account_code = account_code
        self.available = available
        self.required = required
        self.shortfall = required - available
        super().__init__(
            f"{account_code} has {available} available, {required} required",
            account=account_code,
            available=MoneyValue.of(available).model_dump(),
            required=MoneyValue.of(required).model_dump(),
            shortfall=MoneyValue.of(self.shortfall).model_dump(),
        )


class LimitExceeded(Conflict):
    """A ceiling passed by the caller would be exceeded by ``excess``."""

    code = "limit_exceeded"
    title = "The operation would exceed a balance limit"

    def __init__(self, *, account_code: str, limit: Money, current: Money, excess: Money) -> None:
        self.account_code = account_code
        self.limit = limit
        self.current = current
        self.excess = excess
        super().__init__(
            f"{account_code} would exceed its limit of {limit} by {excess}",
            account=account_code,
            limit=MoneyValue.of(limit).model_dump(),
            excess=MoneyValue.of(excess).model_dump(),
        )


class HoldNotFound(NotFound):
    code = "hold_not_found"
    title = "Hold not found"


class HoldNotPending(Conflict):
    code = "hold_not_pending"
    title = "The hold was already posted, voided or expired"


class HoldExpired(Conflict):
    code = "hold_expired"
    title = "The hold expired and can no longer be posted"


class HoldNotExpired(Conflict):
    code = "hold_not_expired"
    title = "The hold has not expired yet"


class InvalidHoldAmounts(Unprocessable):
    code = "invalid_hold_amounts"
    title = "Posted amounts must be on held accounts, on the held side, and at most the held amount"


class TransferNotFound(NotFound):
    code = "transfer_not_found"
    title = "Transfer not found"


class NotReversible(Conflict):
    code = "transfer_not_reversible"
    title = "Only posted transfers (single-phase or a posted hold) can be reversed"


class AlreadyReversed(Conflict):
    code = "transfer_already_reversed"
    title = "The transfer was already reversed"


# ---- helpers --------------------------------------------------------------------------------------


def new_id() -> uuid.UUID:
    """A time-ordered UUID (version 7 layout): new rows land at the right edge of the indexes."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def _net_legs(postings: Sequence[Posting]) -> list[tuple[AccountSpec, int]]:
    """Net signed amount (credit positive) per account, in first-seen order; zeros dropped."""
    if not postings:
        raise ValueError("a transfer needs at least one posting")
    specs: dict[uuid.UUID, AccountSpec] = {}
    net: dict[uuid.UUID, int] = {}
    for p in postings:
        if not isinstance(p, Posting):
            raise TypeError("postings must be Posting instances")
        for spec, amount in ((p.debit, -p.amount.amount_minor), (p.credit, p.amount.amount_minor)):
            known = specs.setdefault(spec.id, spec)
            if known != spec:
                raise ValueError(f"account {spec.code}/{spec.currency} given with different properties")
            net[spec.id] = net.get(spec.id, 0) + amount
    legs = [(specs[i], amount) for i, amount in net.items() if amount != 0]
    if not legs:
        raise ValueError("the postings cancel out: nothing to transfer")
    return legs


def _fingerprint(**content: Any) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in RETRYABLE_SQLSTATES


async def _call(coro: Awaitable[T]) -> T:
    try:
        return await coro
    except (DBAPIError, asyncpg.PostgresError) as exc:
        if _retryable(exc):
            raise LedgerBusy(retry_after=1) from exc
        raise


def _money(detail: dict[str, Any], key: str) -> Money:
    return Money(int(detail[key]), str(detail["currency"]))


async def _outcome(
    session: Executor,
    row: Outcome,
    *,
    key: str,
    created: Callable[[], Transfer] | None,
) -> Transfer:
    status, detail = row.status, row.detail
    if status == "created":
        if created is not None:
            return created()
        assert row.transfer_id is not None
        return await get_transfer(session, row.transfer_id)
    if status == "duplicate":
        assert row.transfer_id is not None
        stored = await get_transfer(session, row.transfer_id)
        return _replace(stored, replayed=True)
    if status == "key_reused":
        raise LedgerIdempotencyConflict(f"ledger key {key!r} belongs to transfer {row.transfer_id}")
    if status == "insufficient_funds":
        raise InsufficientFunds(
            account_code=str(detail["code"]),
            available=_money(detail, "available"),
            required=_money(detail, "required"),
        )
    if status == "limit_exceeded":
        raise LimitExceeded(
            account_code=str(detail["code"]),
            limit=_money(detail, "limit"),
            current=_money(detail, "current"),
            excess=_money(detail, "excess"),
        )
    if status == "hold_not_found":
        raise HoldNotFound()
    if status == "hold_not_pending":
        raise HoldNotPending(f"the hold is {detail.get('status')}", hold_status=detail.get("status"))
    if status == "hold_expired":
        raise HoldExpired(expires_at=str(detail.get("expires_at")))
    if status == "hold_not_expired":
        raise HoldNotExpired(expires_at=str(detail.get("expires_at")))
    if status == "invalid_amounts":
        raise InvalidHoldAmounts()
    if status == "transfer_not_found":
        raise TransferNotFound()
    if status == "not_reversible":
        raise NotReversible(f"a {detail.get('kind')} transfer cannot be reversed")
    if status == "already_reversed":
        raise AlreadyReversed(reversal_id=str(detail.get("reversal_id")))
    if status == "unknown_accounts":
        raise AccountNotFound(f"unknown accounts {detail.get('missing')}")
    raise AppError(f"unexpected ledger status {status!r}")  # pragma: no cover


def _replace(transfer: Transfer, *, replayed: bool) -> Transfer:
    return Transfer(
        id=transfer.id,
        kind=transfer.kind,
        idempotency_key=transfer.idempotency_key,
        reference=transfer.reference,
        reason=transfer.reason,
        effective_at=transfer.effective_at,
        legs=transfer.legs,
        pending_id=transfer.pending_id,
        reverses_id=transfer.reverses_id,
        metadata=transfer.metadata,
        replayed=replayed,
    )


def _check_text(name: str, value: str, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{name} must be a non-empty string of at most {limit} characters")


# ---- accounts -------------------------------------------------------------------------------------


async def ensure_accounts(session: Executor, accounts: Iterable[AccountSpec]) -> None:
    """Create the accounts that do not exist yet (idempotent; existing rows are left as they are)."""
    specs = list({s.id: s for s in accounts}.values())
    if specs:
        await repository.insert_accounts(session, specs)


async def lock_accounts(session: Executor, accounts: Iterable[AccountSpec]) -> None:
    """Create (if needed) and lock accounts, in id order, until the end of the transaction.

    For checks that span several statements (e.g. a daily limit computed from history) and must
    not race with other postings to the same accounts. Raises :class:`LedgerBusy` on deadlock.
    """
    specs = list({s.id: s for s in accounts}.values())
    await ensure_accounts(session, specs)
    await _call(repository.lock_accounts(session, sorted(s.id for s in specs)))


# ---- postings -------------------------------------------------------------------------------------


async def transfer(
    session: Executor,
    *,
    postings: Sequence[Posting],
    idempotency_key: str,
    reference: str,
    reason: str,
    now: datetime,
    metadata: dict[str, Any] | None = None,
    ceilings: Mapping[AccountSpec, Money] | None = None,
) -> Transfer:
    """Post a balanced multi-leg transfer at once (single phase).

    ``reference`` names the business object (``payment:<id>``), ``reason`` the business reason
    shown in histories (``order_payment``). ``ceilings`` caps the normal balance (including
    pending incoming) of the given accounts after the transfer. Raises InsufficientFunds,
    LimitExceeded, LedgerIdempotencyConflict, LedgerBusy.
    """
    return await _post(
        session,
        prepare(
            postings=postings,
            idempotency_key=idempotency_key,
            reference=reference,
            reason=reason,
            now=now,
            metadata=metadata,
            ceilings=ceilings,
        ),
    )


async def hold(
    session: Executor,
    *,
    postings: Sequence[Posting],
    idempotency_key: str,
    reference: str,
    reason: str,
    now: datetime,
    expires_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    ceilings: Mapping[AccountSpec, Money] | None = None,
) -> Transfer:
    """Create a hold (pending transfer): reserves the amounts without moving posted balances.

    Debited accounts lose available balance now (checked like a transfer); the hold is later
    posted (:func:`post_hold`), voided (:func:`void_hold`) or expires after ``expires_at`` (not
    checked against ``now``, so that a late retry still replays). The returned transfer's id is
    the hold id. Raises like :func:`transfer`.
    """
    return await _post(
        session,
        prepare(
            kind=TransferKind.hold,
            postings=postings,
            idempotency_key=idempotency_key,
            reference=reference,
            reason=reason,
            now=now,
            metadata=metadata,
            ceilings=ceilings,
            expires_at=expires_at,
        ),
    )


@dataclass(frozen=True, slots=True)
class PreparedTransfer:
    """A checked single-phase transfer or hold, ready for ``ledger_post`` (see :func:`prepare`).

    ``params`` are the function's arguments by name (as :func:`repository.call_post` takes them).
    Composite statements of other modules (one round trip for a whole business operation) pass
    them to ``ledger_post`` inside their own SQL function and call :meth:`created` when it
    returned ``created``; everything else posts with :func:`transfer` / :func:`hold`.
    """

    kind: TransferKind
    params: dict[str, Any]
    legs: tuple[Leg, ...]
    accounts: tuple[AccountSpec, ...]
    """The accounts of the legs (to create them on first use: ``unknown_accounts``)."""

    @property
    def id(self) -> uuid.UUID:
        return self.params["id"]  # type: ignore[no-any-return]

    def created(self) -> Transfer:
        """The transfer as ``ledger_post`` created it (no read-back needed)."""
        p = self.params
        return Transfer(
            id=p["id"],
            kind=self.kind,
            idempotency_key=p["key"],
            reference=p["reference"],
            reason=p["reason"],
            effective_at=p["effective_at"],
            legs=self.legs,
            metadata=p["metadata"],
        )


def prepare(
    *,
    kind: TransferKind = TransferKind.transfer,
    postings: Sequence[Posting],
    idempotency_key: str,
    reference: str,
    reason: str,
    now: datetime,
    metadata: dict[str, Any] | None = None,
    ceilings: Mapping[AccountSpec, Money] | None = None,
    expires_at: datetime | None = None,
) -> PreparedTransfer:
    """Check and net a transfer (or hold) without touching the database. Raises ValueError."""
    _check_text("idempotency_key", idempotency_key, 255)
    _check_text("reference", reference, 200)
    _check_text("reason", reason, 64)
    legs = _net_legs(postings)
    ceiling_ids: list[uuid.UUID] = []
    ceiling_values: list[int] = []
    for spec, limit in (ceilings or {}).items():
        if limit.currency != spec.currency:
            raise ValueError(f"ceiling of {spec.code} must be in {spec.currency}")
        ceiling_ids.append(spec.id)
        ceiling_values.append(limit.amount_minor)
    fingerprint = _fingerprint(
        kind=str(kind),
        legs=sorted((str(s.id), a) for s, a in legs),
        reference=reference,
        reason=reason,
    )
    phase = EntryPhase.pending if kind is TransferKind.hold else EntryPhase.posted
    params: dict[str, Any] = {
        "id": new_id(),
        "key": idempotency_key,
        "fingerprint": fingerprint,
        "kind": str(kind),
        "reference": reference,
        "reason": reason,
        "metadata": metadata,
        "effective_at": now,
        "expires_at": expires_at,
        "accounts": [s.id for s, _ in legs],
        "amounts": [a for _, a in legs],
        "phases": [str(phase)] * len(legs),
        "ceiling_accounts": ceiling_ids,
        "ceilings": ceiling_values,
    }
    return PreparedTransfer(
        kind, params, tuple(Leg(s.id, s.code, s.money(a), phase) for s, a in legs), tuple(s for s, _ in legs)
    )


async def _post(session: Executor, prepared: PreparedTransfer) -> Transfer:
    row = await _call(repository.call_post(session, **prepared.params))
    if row.status == "unknown_accounts":
        # First use of an account: create what is missing, then post (rare: one extra round trip).
        await ensure_accounts(session, prepared.accounts)
        row = await _call(repository.call_post(session, **prepared.params))
    return await _outcome(session, row, key=prepared.params["key"], created=prepared.created)


async def post_hold(
    session: Executor,
    *,
    hold_id: uuid.UUID,
    idempotency_key: str,
    now: datetime,
    postings: Sequence[Posting] | None = None,
    reason: str | None = None,
    reference: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Transfer:
    """Post a hold: fully (``postings=None``) or partially, releasing whatever is not posted.

    Partial ``postings`` may only use the hold's accounts, on the held side, and per account at
    most the held amount. ``reason``/``reference`` default to the hold's. Raises HoldNotFound,
    HoldNotPending (already posted/voided/expired), HoldExpired (``now`` ≥ expiry),
    InvalidHoldAmounts, LedgerIdempotencyConflict, LedgerBusy.
    """
    accounts: list[uuid.UUID] | None = None
    amounts: list[int] | None = None
    if postings is not None:
        legs = _net_legs(postings)
        accounts = [s.id for s, _ in legs]
        amounts = [a for _, a in legs]
    return await _resolve(
        session,
        action="post",
        hold_id=hold_id,
        idempotency_key=idempotency_key,
        now=now,
        accounts=accounts,
        amounts=amounts,
        reason=reason,
        reference=reference,
        metadata=metadata,
    )


async def void_hold(
    session: Executor,
    *,
    hold_id: uuid.UUID,
    idempotency_key: str,
    now: datetime,
    reason: str | None = None,
    reference: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Transfer:
    """Release a pending hold entirely (also allowed after its expiry time).

    Raises HoldNotFound, HoldNotPending, LedgerIdempotencyConflict, LedgerBusy.
    """
    return await _resolve(
        session,
        action="void",
        hold_id=hold_id,
        idempotency_key=idempotency_key,
        now=now,
        accounts=None,
        amounts=None,
        reason=reason,
        reference=reference,
        metadata=metadata,
    )


async def expire_hold(session: Executor, *, hold_id: uuid.UUID, now: datetime) -> Transfer:
    """Release a hold whose ``expires_at`` ≤ ``now`` (the expiry job; key ``expire:<hold id>``).

    Raises HoldNotFound, HoldNotPending, HoldNotExpired, LedgerBusy.
    """
    return await _resolve(
        session,
        action="expire",
        hold_id=hold_id,
        idempotency_key=f"expire:{hold_id}",
        now=now,
        accounts=None,
        amounts=None,
        reason=None,
        reference=None,
        metadata=None,
    )


async def _resolve(
    session: Executor,
    *,
    action: str,
    hold_id: uuid.UUID,
    idempotency_key: str,
    now: datetime,
    accounts: list[uuid.UUID] | None,
    amounts: list[int] | None,
    reason: str | None,
    reference: str | None,
    metadata: dict[str, Any] | None,
) -> Transfer:
    _check_text("idempotency_key", idempotency_key, 255)
    fingerprint = _fingerprint(
        kind=action,
        hold_id=str(hold_id),
        legs=sorted(zip([str(a) for a in accounts], amounts, strict=True)) if accounts and amounts else None,
    )
    row = await _call(
        repository.call_resolve_hold(
            session,
            hold_id=hold_id,
            action=action,
            id=new_id(),
            key=idempotency_key,
            fingerprint=fingerprint,
            reference=reference,
            reason=reason,
            metadata=metadata,
            effective_at=now,
            accounts=accounts,
            amounts=amounts,
        )
    )
    return await _outcome(session, row, key=idempotency_key, created=None)


async def reverse(
    session: Executor,
    *,
    transfer_id: uuid.UUID,
    idempotency_key: str,
    now: datetime,
    reason: str = "reversal",
    reference: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Transfer:
    """Undo a posted transfer (``transfer`` or ``post``) with opposite entries; at most once.

    Floors still apply: reversing a top-up the user already spent is InsufficientFunds. Raises
    TransferNotFound, NotReversible, AlreadyReversed, InsufficientFunds,
    LedgerIdempotencyConflict, LedgerBusy.
    """
    _check_text("idempotency_key", idempotency_key, 255)
    row = await _call(
        repository.call_reverse(
            session,
            orig_id=transfer_id,
            id=new_id(),
            key=idempotency_key,
            fingerprint=_fingerprint(kind="reversal", transfer_id=str(transfer_id)),
            reference=reference,
            reason=reason,
            metadata=metadata,
            effective_at=now,
        )
    )
    return await _outcome(session, row, key=idempotency_key, created=None)


# ---- reads ----------------------------------------------------------------------------------------


def _balance(row: Record) -> Balance:
    normal = NormalBalance(row["normal_balance"])
    currency = str(row["currency"])
    posted, pending_debits, pending_credits = (
        int(row["posted"]),
        int(row["pending_debits"]),
        int(row["pending_credits"]),
    )
    if normal is NormalBalance.credit:
        normal_posted, pending_out, pending_in = posted, pending_debits, pending_credits
    else:
        normal_posted, pending_out, pending_in = -posted, pending_credits, pending_debits
    return Balance(
        account_id=row["id"],
        code=str(row["code"]),
        currency=currency,
        normal_balance=normal,
        posted=Money(normal_posted, currency),
        pending_out=Money(pending_out, currency),
        pending_in=Money(pending_in, currency),
        available=Money(normal_posted - pending_out, currency),
        raw_posted=posted,
        version=int(row["version"]),
    )


def _empty_balance(spec: AccountSpec) -> Balance:
    zero = Money.zero(spec.currency)
    return Balance(spec.id, spec.code, spec.currency, spec.normal_balance, zero, zero, zero, zero, 0, 0)


async def balance(session: Executor, account: AccountSpec) -> Balance:
    """Current balances of ``account`` (zero if it was never used); exact for hot accounts too."""
    return (await balances(session, [account]))[account.id]


async def balances(session: Executor, accounts: Iterable[AccountSpec]) -> dict[uuid.UUID, Balance]:
    """Current balances of several accounts, read in one consistent snapshot."""
    specs = list({s.id: s for s in accounts}.values())
    found = {row["id"]: _balance(row) for row in await repository.balances(session, [s.id for s in specs])}
    return {s.id: found.get(s.id) or _empty_balance(s) for s in specs}


async def balance_at(session: Executor, account: AccountSpec, *, at: datetime) -> Balance:
    """Balances of ``account`` as of ``at`` (entries with ``effective_at`` ≤ ``at``), from the journal."""
    row = await repository.balance_at(session, account.id, at)
    return _balance(row) if row is not None else _empty_balance(account)


def _transfers_from_rows(rows: list[Record], entries: list[Record]) -> list[Transfer]:
    legs: dict[uuid.UUID, list[Leg]] = {}
    for e in entries:
        legs.setdefault(e["transfer_id"], []).append(
            Leg(e["account_id"], str(e["code"]), Money(int(e["amount"]), str(e["currency"])), EntryPhase(e["phase"]))
        )
    return [
        Transfer(
            id=r["id"],
            kind=TransferKind(r["kind"]),
            idempotency_key=str(r["idempotency_key"]),
            reference=str(r["reference"]),
            reason=str(r["reason"]),
            effective_at=r["effective_at"],
            legs=tuple(legs.get(r["id"], ())),
            pending_id=r["pending_id"],
            reverses_id=r["reverses_id"],
            metadata=repository.parse_json(r["metadata"]),
        )
        for r in rows
    ]


async def get_transfer(session: Executor, transfer_id: uuid.UUID) -> Transfer:
    """A stored transfer with its entries. Raises TransferNotFound."""
    rows, entries = await repository.transfers(session, ids=[transfer_id])
    if not rows:
        raise TransferNotFound()
    return _transfers_from_rows(rows, entries)[0]


async def get_transfer_by_key(session: Executor, idempotency_key: str) -> Transfer | None:
    """The transfer made under ``idempotency_key``, if any (to tell a replay from a new operation)."""
    transfer_id = await repository.transfer_id_by_key(session, idempotency_key)
    return None if transfer_id is None else await get_transfer(session, transfer_id)


async def find_transfers(session: Executor, *, reference: str) -> list[Transfer]:
    """Every transfer made for a business object (e.g. ``payment:<id>``), oldest first."""
    rows, entries = await repository.transfers(session, reference=reference)
    return _transfers_from_rows(rows, entries)


async def get_hold(session: Executor, hold_id: uuid.UUID) -> Hold:
    """State and legs of a hold. Raises HoldNotFound."""
    row = await repository.hold(session, hold_id)
    if row is None:
        raise HoldNotFound()
    held = await get_transfer(session, hold_id)
    return Hold(
        id=hold_id,
        status=HoldStatus(row["status"]),
        expires_at=row["expires_at"],
        resolved_by=row["resolved_by"],
        reference=str(row["reference"]),
        legs=held.legs,
    )


def _encode_cursor(entry_id: int) -> str:
    return f"e{entry_id}"


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.startswith("e") or not cursor[1:].isdigit():
        raise InvalidCursor()
    return int(cursor[1:])


class InvalidCursor(Unprocessable):
    code = "invalid_cursor"
    title = "The pagination cursor is not valid"


async def history(
    session: Executor,
    account: AccountSpec,
    *,
    cursor: str | None = None,
    limit: int = 50,
    all_phases: bool = False,
) -> HistoryPage:
    """Entries of ``account``, newest first, with the business reason of each transfer.

    By default shows posted entries and the pending entries of holds still pending (what a
    statement shows); ``all_phases`` also shows released entries and resolved holds. Pages by an
    opaque cursor. Raises InvalidCursor.
    """
    if not 1 <= limit <= 500:
        raise ValueError("limit must be within 1..500")
    rows = await repository.history(
        session, account_id=account.id, before=_decode_cursor(cursor), limit=limit + 1, all_phases=all_phases
    )
    sign = 1 if account.normal_balance is NormalBalance.credit else -1
    lines = tuple(
        HistoryLine(
            entry_id=int(r["id"]),
            transfer_id=r["transfer_id"],
            kind=TransferKind(r["kind"]),
            phase=EntryPhase(r["phase"]),
            amount=Money(sign * int(r["amount"]), str(r["currency"])),
            reason=str(r["reason"]),
            reference=str(r["reference"]),
            metadata=repository.parse_json(r["metadata"]),
            effective_at=r["effective_at"],
            hold_status=HoldStatus(r["hold_status"]) if r["hold_status"] else None,
        )
        for r in rows[:limit]
    )
    next_cursor = _encode_cursor(lines[-1].entry_id) if len(rows) > limit else None
    return HistoryPage(lines=lines, next_cursor=next_cursor)


async def credited_since(session: Executor, account: AccountSpec, *, reasons: Sequence[str], since: datetime) -> Money:
    """Net posted amount of single-phase transfers and posted holds with one of ``reasons`` on
    ``account`` since ``since``.

    Signed in the account's normal orientation. Lock the account first (:func:`lock_accounts`)
    when the result gates a posting.
    """
    raw = await repository.credited_since(session, account_id=account.id, reasons=reasons, since=since)
    return Money(raw if account.normal_balance is NormalBalance.credit else -raw, account.currency)


# ---- transactions ---------------------------------------------------------------------------------


async def run_in_transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    attempts: int = 5,
    backoff_seconds: float = 0.005,
) -> T:
    """Run ``work`` in its own transaction and commit; retry the whole transaction on LedgerBusy.

    For jobs, scripts and benchmarks that own their transaction (request handlers use the
    request's unit of work instead and let the client retry with its Idempotency-Key).
    """
    for attempt in range(1, attempts + 1):
        async with sessionmaker() as session:
            try:
                result = await work(session)
                await session.commit()
                return result
            except LedgerBusy:
                await session.rollback()
                if attempt == attempts:
                    raise
            except DBAPIError as exc:
                await session.rollback()
                if attempt == attempts or not _retryable(exc):
                    raise
        await asyncio.sleep(random.uniform(0, backoff_seconds * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover
