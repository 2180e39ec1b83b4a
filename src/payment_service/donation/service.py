"""Live donations: a viewer pays a streamer; the money is split; the streamer's overlay shows an alert.

Invariants this module keeps:

* **One split transfer per donation.** When a donation is paid, ONE ledger transfer (key
  ``donation:<id>:split``) moves the amount from where it arrived (``platform:donation_clearing``
  for provider payments, the donor's wallet otherwise) to the streamer's balance (a hot account)
  and the platform fee — in the same transaction that records the payment's success (a payment
  status hook) or debits the wallet. The fee is fixed when the donation is created
  (``rules.split``): ``fee + streamer share == amount`` exactly.
* **Gapless alert log.** The same transaction gives the donation the next ``alert_seq`` of its
  streamer (counter row locked until COMMIT), writes ``donation.processed`` to the outbox and asks
  for the alert to be published after the commit (``alerts.publish_after_commit``).
* **Shown texts are moderated** at creation (``rules.moderate``); only moderated text is stored.
* Objects are visible to their donor and their streamer; overlay tokens are stored as SHA-256.
* Streamers cannot donate to themselves (wallet money would become payable streamer balance).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import InvalidToken, Principal, PrincipalKind, decode_token
from payment_service.config import AuthSettings, DonationSettings
from payment_service.donation import alerts, repository, rules
from payment_service.donation.schemas import WALLET, AlertFrame, DonationCreate, DonationRequest
from payment_service.errors import AppError, Conflict, DatabaseBusy, Forbidden, NotFound, Unauthorized, Unprocessable
from payment_service.kit import idempotency
from payment_service.kit.clock import Clock
from payment_service.kit.keyed_lock import KeyBusy, KeyedLock
from payment_service.kit.money import InvalidAmount, Money, MoneyValue, UnknownCurrency
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.accounts import AccountSpec
from payment_service.ledger.repository import DriverConnection
from payment_service.ledger.schemas import Posting, Transfer
from payment_service.models.donation import Donation, DonationSource, DonationStatus
from payment_service.models.payment import Payment, PaymentPurpose
from payment_service.outbox import events
from payment_service.outbox import service as outbox_service
from payment_service.payment import service as payment_service
from payment_service.payment.schemas import PaymentCreate
from payment_service.payment.states import PaymentStatus
from payment_service.providers.registry import ProviderRegistry
from payment_service.wallet.service import InsufficientWalletFunds

log = structlog.get_logger(__name__)

ANONYMOUS = "Аноним"
"""Display name shown on stream when the donor gave none (viewers read it: Russian)."""
PAYMENT_DESCRIPTION = "Донат стримеру"
"""What the donor sees on the provider's payment page."""
OVERLAY_TOKEN_PREFIX = "dov_"  # noqa: S105 (a prefix, not a secret)
LEDGER_REASON = "donation"


class DonationNotFound(NotFound):
    code = "donation_not_found"
    title = "Donation not found"


class InvalidDonationAmount(Unprocessable):
    code = "invalid_amount"
    title = "The amount is not valid for a donation"


class SelfDonation(Unprocessable):
    code = "self_donation"
    title = "A streamer cannot donate to their own stream"


class InvalidStreamer(Unprocessable):
    code = "invalid_streamer"
    title = "This user id cannot receive donations"


class DonorNotAllowed(Forbidden):
    code = "donor_not_allowed"
    title = "Only internal services may donate on behalf of another user"


class OverlayTokenForUsersOnly(Forbidden):
    code = "overlay_token_for_users_only"
    title = "Only a streamer (a user token) has an overlay token"


class InvalidStreamToken(Unauthorized):
    code = "invalid_stream_token"
    title = "The token is not a valid streamer or overlay token"


class StreamScopeRefused(Forbidden):
    code = "stream_scope_refused"
    title = "This token may not watch this stream"


class DonationNotClawable(Conflict):
    code = "donation_not_clawable"
    title = "Only a processed donation can be clawed back"


class ClawbackExceedsDonation(Conflict):
    code = "clawback_exceeds_donation"
    title = "More would be clawed back than the donation was"


class ClawbackExceedsBalance(Conflict):
    code = "clawback_exceeds_balance"
    title = "The streamer's balance cannot cover the refund"


# ---- reading ------------------------------------------------------------------------------------


def can_see(principal: Principal, donation: Donation) -> bool:
    """Users see the donations they made and the ones they received; services and admins need
    ``donations:read``."""
    if principal.kind is PrincipalKind.user:
        return principal.subject in (donation.donor_id, donation.streamer_id)
    return principal.has("donations:read")


async def get(session: AsyncSession, *, principal: Principal, donation_id: uuid.UUID) -> Donation:
    """The donation if the principal may see it. Raises DonationNotFound (also for others')."""
    donation = await repository.get(session, donation_id)
    if donation is None or not can_see(principal, donation):
        raise DonationNotFound()
    return donation


async def payment_of(session: AsyncSession, *, principal: Principal, donation: Donation) -> Payment | None:
    """The donation's payment if the principal may see it (the donor, services); not the streamer."""
    if donation.payment_id is None:
        return None
    try:
        return await payment_service.get(session, principal=principal, payment_id=donation.payment_id)
    except payment_service.PaymentNotFound:
        return None


# ---- creating -----------------------------------------------------------------------------------


def _donor(principal: Principal, requested: str | None) -> str:
    if principal.kind is PrincipalKind.user:
        if requested is not None and requested != principal.subject:
            raise DonorNotAllowed()
        return principal.subject
    if requested is None:
        raise Unprocessable("donor_id is required when a service creates a donation", field="donor_id")
    return requested


def _amount(value: MoneyValue | Money, settings: DonationSettings) -> Money:
    try:
        money = value if isinstance(value, Money) else value.to_money()
    except (UnknownCurrency, InvalidAmount) as exc:
        raise InvalidDonationAmount(str(exc)) from None
    if money.currency != settings.currency:
        raise InvalidDonationAmount(f"donations are accepted in {settings.currency}", currency=money.currency)
    low, high = Money(settings.min_amount_minor, money.currency), Money(settings.max_amount_minor, money.currency)
    if not low <= money <= high:
        raise InvalidDonationAmount(
            f"a donation is between {low} and {high}",
            minimum=MoneyValue.of(low).model_dump(),
            maximum=MoneyValue.of(high).model_dump(),
        )
    return money


def _check_streamer(streamer_id: str, donor_id: str) -> None:
    try:
        accounts.streamer_balance(streamer_id)
    except ValueError:
        raise InvalidStreamer(streamer_id=streamer_id[:64]) from None
    if streamer_id == donor_id:
        raise SelfDonation()


def _new_donation(
    *,
    settings: DonationSettings,
    streamer_id: str,
    donor_id: str,
    created_by: str,
    source: DonationSource,
    method: str,
    money: Money,
    message: str | None,
    display_name: str | None,
    now: datetime,
    request_key: uuid.UUID | None = None,
    external_ref: str | None = None,
) -> Donation:
    share = rules.split(money, percent=settings.fee_percent, min_fee=Money(settings.min_fee_minor, money.currency))
    shown_message = rules.moderate(message, max_length=settings.message_max_length, banned_words=settings.banned_words)
    shown_name = rules.moderate(
        display_name, max_length=settings.display_name_max_length, banned_words=settings.banned_words
    )
    flags = sorted({f"message:{f}" for f in shown_message.flags} | {f"name:{f}" for f in shown_name.flags})
    return Donation(
        id=uuid.uuid4(),
        streamer_id=streamer_id,
        donor_id=donor_id,
        created_by=created_by,
        source=source,
        method=method,
        status=DonationStatus.pending,
        amount_minor=money.amount_minor,
        currency=money.currency,
        fee_minor=share.fee.amount_minor,
        streamer_minor=share.streamer.amount_minor,
        display_name=shown_name.text or ANONYMOUS,
        message=shown_message.text or None,
        moderation_flags=flags,
        request_key=request_key,
        external_ref=external_ref,
        clawed_back_minor=0,
        created_at=now,
        updated_at=now,
    )


def _from_request(
    principal: Principal,
    data: DonationCreate,
    settings: DonationSettings,
    *,
    now: datetime,
    request_key: uuid.UUID | None,
) -> Donation:
    """The (pending, unsaved) donation an API request asks for. Raises DonorNotAllowed,
    InvalidStreamer, SelfDonation, InvalidDonationAmount."""
    donor_id = _donor(principal, data.donor_id)
    _check_streamer(data.streamer_id, donor_id)
    return _new_donation(
        settings=settings,
        streamer_id=data.streamer_id,
        donor_id=donor_id,
        created_by=principal.key,
        source=DonationSource.wallet if data.method == WALLET else DonationSource.payment,
        method=str(data.method),
        money=_amount(data.amount, settings),
        message=data.message,
        display_name=data.display_name,
        now=now,
        request_key=request_key,
    )


async def create(
    session: AsyncSession,
    *,
    principal: Principal,
    data: DonationCreate,
    claim: idempotency.Claim | None,
    providers: ProviderRegistry,
    clock: Clock,
    settings: DonationSettings,
) -> tuple[Donation, Payment | None]:
    """Create a donation and pay it: from the donor's wallet at once, or through a payment.

    Wallet: processed in this transaction (split, alert, event) or InsufficientWalletFunds with
    nothing recorded. Payment: a payment with purpose ``donation`` is created (committed before the
    provider is called); the donation is processed when the payment succeeds — maybe already in
    this request, usually when the webhook is applied — and fails with it. A retry under the same
    Idempotency-Key after a crash resumes the same donation and payment. Raises DonorNotAllowed,
    InvalidDonationAmount, InvalidStreamer, SelfDonation, InsufficientWalletFunds and the
    payment errors (NoProviderAvailable …).
    """
    if claim is not None and claim.resumed:
        existing = await repository.by_request_key(session, claim.id)
        if existing is not None:
            payment = None
            if existing.source is DonationSource.payment:
                payment = await payment_service.create(
                    session,
                    principal=principal,
                    data=_payment_request(existing, data, principal),
                    purpose=PaymentPurpose.donation,
                    claim=claim,
                    providers=providers,
                    clock=clock,
                )
                existing = await _reload(session, existing.id)
            return existing, payment

    now = clock.now()
    wallet = data.method == WALLET
    donation = _from_request(principal, data, settings, now=now, request_key=claim.id if claim else None)
    if wallet:
        # Not flushed yet: _process flushes it once, already processed (one INSERT, no UPDATE);
        # a wallet short of money leaves nothing behind.
        session.add(donation)
        try:
            await _process(
                session, donation, source=accounts.user_wallet(donation.donor_id, donation.currency), now=now
            )
        except ledger_service.InsufficientFunds as exc:
            raise InsufficientWalletFunds(available=exc.available, required=exc.required) from None
        return donation, None

    await repository.add(session, donation)
    payment = await payment_service.create(
        session,
        principal=principal,
        data=_payment_request(donation, data, principal),
        purpose=PaymentPurpose.donation,
        claim=claim,
        providers=providers,
        clock=clock,
    )
    donation = await _reload(session, donation.id)
    if donation.payment_id is None:
        donation.payment_id = payment.id
        donation.updated_at = clock.now()
        await session.flush()
    return donation, payment


ALERT_ID_PLACEHOLDER = b'"alert_id":null'
"""How a rendered donation without an alert position says so (JSON escapes every quote inside a
string, so this byte sequence can only be the key itself)."""


@dataclass(frozen=True, slots=True)
class CreatedAtOnce:
    """A wallet donation done by :func:`create_from_wallet_at_once` (committed)."""

    donation: Donation
    body: bytes
    """The response body as stored with the Idempotency-Key (send exactly this)."""


_CONNECTION_ERRORS = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError)
_BUSY_SQLSTATES = frozenset({"57014", "55P03"})
"""Statement timeout, lock not available: the server is too busy for this statement now."""
_FALL_BACK_SQLSTATES = ledger_service.RETRYABLE_SQLSTATES | {"23505"}
"""Deadlock, serialization failure, unique violation: the statement wrote nothing; the general
path sorts it out (a unique violation is not expected: it is logged)."""


_STREAMER_TURNS = KeyedLock()
"""One-statement wallet donations to one streamer in Postgres at once from this process
(``donations.statements_per_streamer``); the rest wait their turn here. A few overlap their ledger
posting with the one holding the streamer's row; 64 at once (a closed loop on one streamer, 2 API
processes) cost Postgres 1.75 ms per donation against 1.06–1.38 ms with 2–4 per process
(docs/performance.md). The general path (rare: anything but a plain success) takes no turn."""


async def create_from_wallet_at_once(
    acquire: Callable[[], AbstractAsyncContextManager[DriverConnection]],
    *,
    principal: Principal,
    data: DonationCreate,
    request: idempotency.KeyedRequest,
    clock: Clock,
    settings: DonationSettings,
    render: Callable[[Donation], bytes],
    response_status: int,
    response_headers: Mapping[str, str],
) -> CreatedAtOnce | str:
    """The fast path of a wallet donation under a new Idempotency-Key: claim, split, alert position,
    event and stored response in ONE statement (``donation_create_from_wallet``), committed.

    ``acquire`` lends a connection in no transaction (taken only once the request is known to be a
    valid wallet donation). Returns the reason, with nothing written, whenever the general path must
    decide: not a wallet donation or invalid input (the general path renders the error), a known
    or busy key (replay, 409, resume), a ledger refusal (short funds → 402; on first use of an
    account the ledger opens it and the statement runs once more instead), a deadlock, a lost connection (the statement may have committed: the general path
    then finds the key and replays). The caller then runs :func:`create` in a unit of work as
    usual, so every outcome other than success is exactly the general path's. ``render`` turns
    the processed donation (without its alert position) into the response body. Raises
    DatabaseBusy on a statement timeout, or when no turn on the streamer came in time.
    """
    if data.method != WALLET:
        return "not_wallet"
    now = clock.now()
    key_id = uuid.uuid4()
    try:
        donation = _from_request(principal, data, settings, now=now, request_key=key_id)
    except AppError as exc:
        return exc.code
    transfer = ledger_service.prepare(
        postings=split_postings(donation, accounts.user_wallet(donation.donor_id, donation.currency)),
        idempotency_key=f"{_reference(donation)}:split",
        reference=_reference(donation),
        reason=LEDGER_REASON,
        now=now,
        metadata={"streamer_id": donation.streamer_id, "donor_id": donation.donor_id},
    )
    donation.status = DonationStatus.processed
    donation.ledger_transfer_id = transfer.id
    donation.processed_at = now
    head, placeholder, tail = render(donation).partition(ALERT_ID_PLACEHOLDER)
    if not placeholder or ALERT_ID_PLACEHOLDER in tail:
        return "unexpected_body"
    event = outbox_service.row_of(_processed_event(donation, now=now), key=donation.streamer_id)
    try:
        # a few statements per streamer at a time from this process: the streamer's alert
        # position row is locked until COMMIT, and a crowd of backends waiting on it costs
        # Postgres CPU (a donation storm to one streamer); queued here they hold no pooled
        # connection either
        async with (
            _STREAMER_TURNS.hold(
                donation.streamer_id, timeout=settings.turn_timeout_seconds, holders=settings.statements_per_streamer
            ),
            acquire() as conn,
        ):
            for first_try in (True, False):
                outcome = await repository.create_from_wallet(
                    conn,
                    request=request,
                    key_id=key_id,
                    now=now,
                    response_status=response_status,
                    response_headers=response_headers,
                    body_head=head + b'"alert_id":',
                    body_tail=tail,
                    donation=donation,
                    transfer=transfer,
                    event=event,
                )
                if outcome.status != "unknown_accounts" or not first_try:
                    break
                # First donation to this streamer (or in this currency): nothing was written; the
                # ledger opens the accounts (its own statement: an empty account is harmless even
                # if the donation then fails), and the same statement runs again.
                await ledger_service.ensure_accounts(conn, transfer.accounts)
    except KeyBusy:  # no turn in time: the streamer's queue in this process is too long
        log.warning("donation_turn_timeout", streamer_id=donation.streamer_id)
        raise DatabaseBusy() from None
    except _CONNECTION_ERRORS as exc:
        log.warning("donation_at_once_connection_lost", error=repr(exc))
        return "connection_lost"
    except asyncpg.PostgresError as exc:
        if exc.sqlstate in _BUSY_SQLSTATES:
            raise DatabaseBusy() from exc
        if exc.sqlstate not in _FALL_BACK_SQLSTATES:
            raise
        if exc.sqlstate == "23505":
            log.warning("donation_at_once_unique_violation", constraint=getattr(exc, "constraint_name", None))
        return f"sqlstate_{exc.sqlstate}"
    if outcome.status != "created" or outcome.seq is None or outcome.body is None:
        return outcome.status
    donation.alert_seq = outcome.seq
    return CreatedAtOnce(donation, outcome.body)


def _payment_request(donation: Donation, data: DonationCreate, principal: Principal) -> PaymentCreate:
    assert data.return_url is not None
    assert data.method != WALLET
    return PaymentCreate(
        amount=MoneyValue.of(Money(donation.amount_minor, donation.currency)),
        method=data.method,
        description=PAYMENT_DESCRIPTION,
        return_url=data.return_url,
        order_reference=f"donation:{donation.id}",
        capture=True,
        provider=data.provider,
        payer_id=None if principal.kind is PrincipalKind.user else donation.donor_id,
        payer_phone=data.payer_phone,
        metadata={"donation_id": str(donation.id), "streamer_id": donation.streamer_id},
    )


async def _reload(session: AsyncSession, donation_id: uuid.UUID) -> Donation:
    donation = await repository.get(session, donation_id)
    assert donation is not None
    return donation


# ---- processing ---------------------------------------------------------------------------------


def split_postings(donation: Donation, source: AccountSpec) -> list[Posting]:
    """The legs of a donation's split: source → streamer balance, source → platform fees."""
    cur = donation.currency
    postings = []
    if donation.streamer_minor > 0:
        postings.append(
            Posting(source, accounts.streamer_balance(donation.streamer_id, cur), Money(donation.streamer_minor, cur))
        )
    if donation.fee_minor > 0:
        postings.append(Posting(source, accounts.platform_fees(cur), Money(donation.fee_minor, cur)))
    return postings


def _reference(donation: Donation) -> str:
    return f"donation:{donation.id}"


async def _process(
    session: AsyncSession, donation: Donation, *, source: AccountSpec, now: datetime, request_id: str | None = None
) -> None:
    """Split the money, append the alert to the streamer's log, emit the event; same transaction.

    The ledger transfer comes first: a wallet short of money is refused before the alert counter
    is touched (the log stays gapless). Raises ledger InsufficientFunds (nothing written then).
    """
    transfer = await ledger_service.transfer(
        session,
        postings=split_postings(donation, source),
        idempotency_key=f"{_reference(donation)}:split",
        reference=_reference(donation),
        reason=LEDGER_REASON,
        now=now,
        metadata={"streamer_id": donation.streamer_id, "donor_id": donation.donor_id},
    )
    donation.alert_seq = await repository.next_alert_seq(session, streamer_id=donation.streamer_id, now=now)
    donation.status = DonationStatus.processed
    donation.ledger_transfer_id = transfer.id
    donation.processed_at = now
    donation.updated_at = now
    await session.flush()
    await outbox_service.emit(
        session, _processed_event(donation, now=now, request_id=request_id), key=donation.streamer_id
    )
    alerts.publish_after_commit(session, donation)


def _processed_event(donation: Donation, *, now: datetime, request_id: str | None = None) -> events.DonationProcessed:
    """``donation.processed`` of a donation (its ``alert_seq`` 0 if not known yet: the one-statement
    path lets the database put the position in)."""
    return events.DonationProcessed(
        donation_id=donation.id,
        streamer_id=donation.streamer_id,
        donor_id=donation.donor_id,
        source=str(donation.source),
        method=donation.method,
        payment_id=donation.payment_id,
        request_id=request_id,
        amount_minor=donation.amount_minor,
        streamer_amount_minor=donation.streamer_minor,
        fee_minor=donation.fee_minor,
        currency=donation.currency,
        alert_seq=donation.alert_seq or 0,
        display_name=donation.display_name,
        message=donation.message,
        occurred_at=now,
    )


async def _fail(
    session: AsyncSession, donation: Donation, *, reason: str, now: datetime, request_id: str | None = None
) -> None:
    donation.status = DonationStatus.failed
    donation.failure_code = reason[:64]
    donation.failed_at = now
    donation.updated_at = now
    await session.flush()
    await outbox_service.emit(
        session,
        events.DonationFailed(
            donation_id=donation.id,
            streamer_id=donation.streamer_id,
            donor_id=donation.donor_id,
            source=str(donation.source),
            payment_id=donation.payment_id,
            request_id=request_id,
            amount_minor=donation.amount_minor,
            currency=donation.currency,
            reason=reason,
            occurred_at=now,
        ),
        key=donation.streamer_id,
    )


_PAYMENT_FAILURES = {
    PaymentStatus.failed: "payment_failed",
    PaymentStatus.canceled: "payment_canceled",
    PaymentStatus.expired: "payment_expired",
}


async def on_payment_status(session: AsyncSession, payment: Payment, now: datetime) -> None:
    """Payment status hook for purpose ``donation`` (registered below; same transaction).

    ``succeeded`` → process the donation (split from donation clearing); ``failed``/``canceled``/
    ``expired`` → the donation fails. Safe to run again: a donation is processed or failed once.
    """
    status = PaymentStatus(payment.status)
    if status is not PaymentStatus.succeeded and status not in _PAYMENT_FAILURES:
        return
    donation = None
    raw_id = payment.metadata_.get("donation_id")
    if raw_id:
        try:
            donation = await repository.get(session, uuid.UUID(raw_id), lock=True)
        except ValueError:
            donation = None
    if donation is None:
        donation = await repository.by_payment(session, payment.id, lock=True)
    if donation is None:
        log.error("donation_payment_without_donation", payment_id=str(payment.id))
        return
    if donation.payment_id is None:
        donation.payment_id = payment.id
    elif donation.payment_id != payment.id:
        log.error("donation_payment_mismatch", donation_id=str(donation.id), payment_id=str(payment.id))
        return
    if donation.status is not DonationStatus.pending:
        return
    if status is PaymentStatus.succeeded:
        if payment.captured_minor != donation.amount_minor or payment.currency != donation.currency:
            # cannot happen for one-stage payments; keep the money in clearing for an operator
            log.error("donation_amount_mismatch", donation_id=str(donation.id), captured=payment.captured_minor)
            await _fail(session, donation, reason="amount_mismatch", now=now)
            return
        await _process(session, donation, source=accounts.donation_clearing(donation.currency), now=now)
    else:
        await _fail(session, donation, reason=_PAYMENT_FAILURES[status], now=now)


payment_service.on_status_change(PaymentPurpose.donation, on_payment_status)


# ---- requests from the Streaming Service (Kafka) ------------------------------------------------


async def request_from_stream(
    session: AsyncSession,
    *,
    source: str,
    event_id: str,
    request: DonationRequest,
    settings: DonationSettings,
    now: datetime,
) -> Donation:
    """A wallet donation asked for by the Streaming Service; one donation per request (``source``
    + event id), whatever the number of deliveries. The outcome is a ``donation.processed`` or
    ``donation.failed`` event carrying ``request_id`` — a refusal (short wallet, amount out of
    range, self-donation) is a failed donation, not an error. Raises InvalidStreamer (the request
    cannot be recorded at all).
    """
    ref = f"{source}:{event_id}"[:256]
    existing = await repository.by_external_ref(session, ref)
    if existing is not None:
        return existing
    try:
        accounts.streamer_balance(request.streamer_id)
        money = Money(request.amount_minor, request.currency)
    except (ValueError, UnknownCurrency):
        raise InvalidStreamer(streamer_id=request.streamer_id) from None
    refusal = None
    try:
        _amount(money, settings)
    except InvalidDonationAmount:
        refusal = "invalid_amount"
    if request.viewer_id == request.streamer_id:
        refusal = "self_donation"
    donation = _new_donation(
        settings=settings,
        streamer_id=request.streamer_id,
        donor_id=request.viewer_id,
        created_by=f"kafka:{source}"[:128],
        source=DonationSource.wallet,
        method=WALLET,
        money=money,
        message=request.message,
        display_name=request.display_name,
        now=now,
        external_ref=ref,
    )
    await repository.add(session, donation)
    if refusal is not None:
        await _fail(session, donation, reason=refusal, now=now, request_id=event_id)
        return donation
    try:
        await _process(
            session,
            donation,
            source=accounts.user_wallet(request.viewer_id, money.currency),
            now=now,
            request_id=event_id,
        )
    except ledger_service.InsufficientFunds:
        await _fail(session, donation, reason="insufficient_funds", now=now, request_id=event_id)
    return donation


# ---- overlay tokens and the alert log (WebSocket) -----------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RotatedToken:
    streamer_id: str
    token: str
    """Shown once; only its SHA-256 is stored."""
    rotated_at: datetime


async def rotate_overlay_token(session: AsyncSession, *, principal: Principal, now: datetime) -> RotatedToken:
    """Issue a new overlay token for the calling streamer; the previous one stops working at once
    (connections already open stay open until they reconnect). Raises OverlayTokenForUsersOnly,
    InvalidStreamer."""
    if principal.kind is not PrincipalKind.user:
        raise OverlayTokenForUsersOnly()
    _check_streamer(principal.subject, "")
    token = OVERLAY_TOKEN_PREFIX + secrets.token_urlsafe(32)
    await repository.set_overlay_token_hash(
        session, streamer_id=principal.subject, token_hash=_token_hash(token), now=now
    )
    return RotatedToken(streamer_id=principal.subject, token=token, rotated_at=now)


async def authenticate_stream(
    session: AsyncSession, *, token: str | None, auth: AuthSettings, streamer_id: str | None = None
) -> str:
    """The streamer whose alerts ``token`` may watch: an overlay token's streamer, or the subject
    of a user JWT. ``streamer_id``, when given, must be that streamer. Raises InvalidStreamToken
    (missing, unknown, expired, forged) and StreamScopeRefused (a service/admin token, another
    streamer's stream)."""
    if not token:
        raise InvalidStreamToken("a token is required")
    if token.startswith(OVERLAY_TOKEN_PREFIX):
        found = await repository.streamer_by_token_hash(session, _token_hash(token))
        if found is None:
            raise InvalidStreamToken("unknown or rotated overlay token")
        owner = found
    else:
        try:
            principal = decode_token(token, auth)
        except InvalidToken:
            raise InvalidStreamToken() from None
        if principal.kind is not PrincipalKind.user:
            raise StreamScopeRefused("only the streamer's own token may watch a stream")
        owner = principal.subject
    if streamer_id is not None and streamer_id != owner:
        raise StreamScopeRefused("the token belongs to another stream")
    return owner


async def last_alert_id(session: AsyncSession, *, streamer_id: str) -> int:
    """The newest position in the streamer's alert log (0 when none)."""
    return await repository.last_alert_seq(session, streamer_id)


async def alerts_after(session: AsyncSession, *, streamer_id: str, after: int, limit: int = 100) -> list[AlertFrame]:
    """The streamer's alerts after position ``after``, oldest first (at most ``limit``)."""
    rows = await repository.alerts_after(session, streamer_id=streamer_id, after=after, limit=limit)
    return [alerts.frame(d) for d in rows]


# ---- clawback (refunds and chargebacks of donations) -------------------------------------------


class ClawbackKind(StrEnum):
    """Why money goes back."""

    refund = "refund"
    """A refund we grant: only what the streamer's balance still holds can be taken back."""
    chargeback = "chargeback"
    """A bank took the money back: taken in full; what the balance lacks becomes the streamer's debt
    (``streamer:<id>:receivable``)."""


async def clawback(
    session: AsyncSession,
    *,
    donation_id: uuid.UUID,
    amount: Money,
    kind: ClawbackKind,
    idempotency_key: str,
    now: datetime,
) -> Transfer:
    """Take (part of) a processed donation back into where it came from, in ONE ledger transfer.

    The amount is split like the donation was (streamer share : fee, largest remainder) and moved
    from the streamer's balance and the platform fees back to ``platform:donation_clearing``
    (provider payments: the refund flow then pays the provider) or to the donor's wallet. For a
    chargeback the part the streamer's balance lacks is debited to the streamer's receivable.
    The same ``idempotency_key`` replays the first transfer. Raises DonationNotFound,
    DonationNotClawable, InvalidDonationAmount, ClawbackExceedsDonation, ClawbackExceedsBalance.
    """
    donation = await repository.get(session, donation_id, lock=True)
    if donation is None:
        raise DonationNotFound()
    previous = await ledger_service.get_transfer_by_key(session, idempotency_key)
    if previous is not None:
        if previous.reference != _reference(donation):
            raise ledger_service.LedgerIdempotencyConflict("the key belongs to another operation")
        return previous
    if donation.status is not DonationStatus.processed:
        raise DonationNotClawable(donation_status=str(donation.status))
    if amount.currency != donation.currency or not amount.is_positive:
        raise InvalidDonationAmount("the clawback must be a positive amount in the donation's currency")
    if donation.clawed_back_minor + amount.amount_minor > donation.amount_minor:
        left = Money(donation.amount_minor - donation.clawed_back_minor, donation.currency)
        raise ClawbackExceedsDonation(remaining=MoneyValue.of(left).model_dump())
    cur = donation.currency
    fee_back, streamer_back = amount.allocate([donation.fee_minor, donation.streamer_minor])
    target = (
        accounts.donation_clearing(cur)
        if donation.source is DonationSource.payment
        else accounts.user_wallet(donation.donor_id, cur)
    )
    balance_account = accounts.streamer_balance(donation.streamer_id, cur)
    postings: list[Posting] = []
    if fee_back.is_positive:
        postings.append(Posting(accounts.platform_fees(cur), target, fee_back))
    taken = streamer_back
    if kind is ClawbackKind.chargeback and streamer_back.is_positive:
        await ledger_service.lock_accounts(session, [balance_account])
        available = (await ledger_service.balance(session, balance_account)).available
        taken = min(streamer_back, max(available, Money.zero(cur)))
        if taken < streamer_back:
            postings.append(
                Posting(accounts.streamer_receivable(donation.streamer_id, cur), target, streamer_back - taken)
            )
    if taken.is_positive:
        postings.append(Posting(balance_account, target, taken))
    try:
        transfer = await ledger_service.transfer(
            session,
            postings=postings,
            idempotency_key=idempotency_key,
            reference=_reference(donation),
            reason=f"donation_{kind}",
            now=now,
            metadata={"streamer_id": donation.streamer_id, "kind": str(kind)},
        )
    except ledger_service.InsufficientFunds as exc:
        raise ClawbackExceedsBalance(
            available=MoneyValue.of(exc.available).model_dump(), required=MoneyValue.of(exc.required).model_dump()
        ) from None
    donation.clawed_back_minor += amount.amount_minor
    donation.updated_at = now
    await session.flush()
    return transfer


# ---- publishing what the fast path missed (worker job) ------------------------------------------


async def publish_pending_alerts(
    session: AsyncSession, *, publisher: alerts.AlertPublisher, processed_before: datetime, limit: int
) -> int:
    """Publish alerts committed before ``processed_before`` that nobody published (a process died
    between its commit and its publication, or had no publisher bound). Marks them in this
    transaction: if Redis refuses, the rollback leaves them for the next run. Returns how many."""
    rows = await repository.claim_unpublished(session, processed_before=processed_before, limit=limit)
    await publisher.publish(rows)
    return len(rows)
