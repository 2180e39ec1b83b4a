"""The event catalogue: every event this service publishes, as a versioned pydantic payload.

Conventions (see ``docs/events.md``):

* ``type`` is ``<aggregate>.<past-tense verb>`` (``payment.succeeded``, ``refund.failed``);
* ``version`` starts at 1; a change that breaks consumers (a removed or retyped field) adds a new
  class with ``version = N + 1`` and the same ``type``; adding an optional field does not;
* ``topic`` is the logical Kafka topic, one per aggregate (``payments.payment``); the Kafka
  key is the aggregate id, given to :func:`payment_service.outbox.service.emit`;
* payloads carry ids and facts, amounts as integer minor units plus a currency — never
  personal data or secrets (they end up in Kafka and in the AsyncAPI document).

Subclassing :class:`Event` with a ``type`` registers the class; :func:`get` and
:func:`catalogue` read the registry and ``outbox/asyncapi.py`` documents it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

_REGISTRY: dict[tuple[str, int], type[Event]] = {}


class UnknownEvent(LookupError):
    """No catalogue entry for this (type, version)."""


class Event(BaseModel):
    """Base of every published event payload.

    Subclasses set the three class variables; the instance fields are the CloudEvents ``data``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ClassVar[str]
    """CloudEvents ``type``, e.g. ``payment.succeeded``."""
    version: ClassVar[int]
    """Payload schema version (CloudEvents extension ``dataversion``)."""
    topic: ClassVar[str]
    """Logical Kafka topic (``kafka.topic_prefix`` is prepended when publishing)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "type" not in cls.__dict__:
            return  # an abstract intermediate class
        register(cls)


def register(cls: type[Event]) -> type[Event]:
    """Add ``cls`` to the catalogue (done automatically for subclasses that set ``type``)."""
    for attr in ("type", "version", "topic"):
        if not hasattr(cls, attr):
            raise TypeError(f"{cls.__qualname__} must set the class variable '{attr}'")
    if not isinstance(cls.version, int) or cls.version < 1:
        raise TypeError(f"{cls.__qualname__}.version must be a positive integer")
    key = (cls.type, cls.version)
    existing = _REGISTRY.get(key)
    if existing is not None and existing is not cls:
        raise TypeError(f"event {cls.type} v{cls.version} is already defined by {existing.__qualname__}")
    _REGISTRY[key] = cls
    return cls


def unregister(cls: type[Event]) -> None:
    """Remove ``cls`` from the catalogue (tests that define throw-away events)."""
    _REGISTRY.pop((cls.type, cls.version), None)


def get(type_: str, version: int | None = None) -> type[Event]:
    """The class for ``type_`` at ``version`` (latest when omitted). Raises UnknownEvent."""
    if version is None:
        versions = [v for (t, v) in _REGISTRY if t == type_]
        if not versions:
            raise UnknownEvent(type_)
        version = max(versions)
    try:
        return _REGISTRY[(type_, version)]
    except KeyError:
        raise UnknownEvent(f"{type_} v{version}") from None


def catalogue() -> list[type[Event]]:
    """Every registered event class, sorted by topic, type and version (stable for docs)."""
    return sorted(_REGISTRY.values(), key=lambda c: (c.topic, c.type, c.version))


def topics() -> list[str]:
    """The logical topics this service publishes to."""
    return sorted({c.topic for c in _REGISTRY.values()})


# ── diagnostics ──────────────────────────────────────────────────────────────────────────────


class DiagnosticPing(Event):
    """Diagnostic event with no business meaning: proves the outbox → Kafka path end to end.

    Emitted by operational checks and by the test suite; every consumer must ignore it.
    """

    type = "system.diagnostic_ping"
    version = 1
    topic = "payments.system"

    message: str = ""
    """Free text for the operator who emitted it."""
    n: int = 0
    """A counter the emitter may use to check ordering."""


# ── business events ──────────────────────────────────────────────────────────────────────────
# Add each event next to the issue that produces it, e.g.
#
#   class PaymentSucceeded(Event):
#       """A payment was captured in full."""
#       type = "payment.succeeded"
#       version = 1
#       topic = "payments.payment"
#       payment_id: uuid.UUID
#       amount_minor: int
#       currency: str


# ── payments (topic payments.payment, key = payment id) ─────────────────────────────────────


class _PaymentStatusEvent(Event):
    """A payment reached a status. Every payment status event carries the same facts."""

    payment_id: uuid.UUID
    payer_id: str
    """Platform user id of the payer."""
    purpose: str
    """order, wallet_top_up or donation."""
    order_reference: str | None = None
    status: str
    method: str
    provider: str | None = None
    amount_minor: int
    captured_minor: int
    currency: str
    decline_code: str | None = None
    occurred_at: datetime


class PaymentPending(_PaymentStatusEvent):
    """A payment was created; its outcome is awaited."""

    type = "payment.pending"
    version = 1
    topic = "payments.payment"


class PaymentRequiresAction(_PaymentStatusEvent):
    """The customer must act (3-DS page, redirect, SBP QR code)."""

    type = "payment.requires_action"
    version = 1
    topic = "payments.payment"


class PaymentAuthorized(_PaymentStatusEvent):
    """The provider holds the money; capture or cancel follows (two-stage payments)."""

    type = "payment.authorized"
    version = 1
    topic = "payments.payment"


class PaymentSucceeded(_PaymentStatusEvent):
    """The money was captured; the ledger has the transfer. Grant what was bought."""

    type = "payment.succeeded"
    version = 1
    topic = "payments.payment"


class PaymentFailed(_PaymentStatusEvent):
    """The payment definitely failed (decline, or every provider failed); no money moved."""

    type = "payment.failed"
    version = 1
    topic = "payments.payment"


class PaymentCanceled(_PaymentStatusEvent):
    """The payment was canceled or its authorization voided; no money moved."""

    type = "payment.canceled"
    version = 1
    topic = "payments.payment"


class PaymentExpired(_PaymentStatusEvent):
    """The payment was not completed (or not captured) in time; any hold was released."""

    type = "payment.expired"
    version = 1
    topic = "payments.payment"


class PaymentRefundRequired(Event):
    """Money arrived for a payment already given up (expired, canceled, failed over): refund it."""

    type = "payment.refund_required"
    version = 1
    topic = "payments.payment"

    payment_id: uuid.UUID
    attempt_id: uuid.UUID
    provider: str
    amount_minor: int
    currency: str
    reason: str
    provider_payment_id: str | None = None
    """The provider's payment that took the money (refund that one)."""
    occurred_at: datetime


PAYMENT_EVENT_FOR_STATUS: dict[str, type[_PaymentStatusEvent]] = {
    "pending": PaymentPending,
    "requires_action": PaymentRequiresAction,
    "authorized": PaymentAuthorized,
    "succeeded": PaymentSucceeded,
    "failed": PaymentFailed,
    "canceled": PaymentCanceled,
    "expired": PaymentExpired,
}


# ── donations (topic payments.donation, key = streamer id) ──────────────────────────────────
# Keyed by the streamer (not the donation): the Streaming Service shows a channel's alerts in
# order, and a donation has a single terminal event, so nothing needs per-donation ordering.


class DonationProcessed(Event):
    """A donation was paid and split: the streamer's balance and the platform fee are credited.

    ``alert_seq`` is the donation's position in the streamer's alert log (1, 2, 3 … without gaps),
    the same id the overlay WebSocket uses. ``display_name`` and ``message`` are the moderated
    texts shown on stream (public by nature: the donor wrote them for the broadcast).
    """

    type = "donation.processed"
    version = 1
    topic = "payments.donation"

    donation_id: uuid.UUID
    streamer_id: str
    donor_id: str
    """Platform user id of the donor."""
    source: str
    """payment (card, SBP, mobile …) or wallet."""
    method: str
    payment_id: uuid.UUID | None = None
    request_id: str | None = None
    """CloudEvents id of the Streaming Service request that asked for it, if any."""
    amount_minor: int
    streamer_amount_minor: int
    fee_minor: int
    currency: str
    alert_seq: int
    display_name: str
    message: str | None = None
    occurred_at: datetime


class DonationFailed(Event):
    """A donation could not be paid (declined, canceled, expired, wallet short of money); no money moved."""

    type = "donation.failed"
    version = 1
    topic = "payments.donation"

    donation_id: uuid.UUID
    streamer_id: str
    donor_id: str
    source: str
    payment_id: uuid.UUID | None = None
    request_id: str | None = None
    amount_minor: int
    currency: str
    reason: str
    """insufficient_funds, payment_failed, payment_canceled, payment_expired …"""
    occurred_at: datetime


# ── refunds (topic payments.refund, key = refund id; payment.refunded on payments.payment) ──────


class PaymentRefunded(Event):
    """Money of a payment went back to the payer (one refund succeeded). Keyed by the payment id,
    so it is ordered with the payment's other events; ``refunded_minor`` is the running total."""

    type = "payment.refunded"
    version = 1
    topic = "payments.payment"

    payment_id: uuid.UUID
    refund_id: uuid.UUID
    payer_id: str
    purpose: str
    order_reference: str | None = None
    destination: str
    """original_method or wallet."""
    amount_minor: int
    """This refund."""
    refunded_minor: int
    """All succeeded refunds of the payment so far."""
    captured_minor: int
    fully_refunded: bool
    currency: str
    occurred_at: datetime


class _RefundEvent(Event):
    """A refund reached a status. ``notification_text`` is what the payer is told (Russian)."""

    refund_id: uuid.UUID
    payment_id: uuid.UUID
    payer_id: str
    """Platform user id of the payer (who gets the notification)."""
    order_reference: str | None = None
    amount_minor: int
    currency: str
    destination: str
    """original_method or wallet."""
    status: str
    notification_text: str
    """Russian text for the payer, e.g. «Возврат 499,00 ₽ оформлен»."""
    occurred_at: datetime


class RefundRequested(_RefundEvent):
    """A refund was asked for; ``status`` says whether it was approved (processing/succeeded) or
    waits for an administrator (pending_review, with the rule ``findings``)."""

    type = "refund.requested"
    version = 1
    topic = "payments.refund"

    findings: list[str] = []


class RefundSucceeded(_RefundEvent):
    """The money went back (the provider confirmed, or the wallet was credited)."""

    type = "refund.succeeded"
    version = 1
    topic = "payments.refund"


class RefundFailed(_RefundEvent):
    """The provider definitely refused the refund; nothing was refunded."""

    type = "refund.failed"
    version = 1
    topic = "payments.refund"

    error_code: str | None = None


class RefundRejected(_RefundEvent):
    """An administrator rejected the request; nothing was refunded."""

    type = "refund.rejected"
    version = 1
    topic = "payments.refund"

    reason: str
    """The administrator's reason (internal; the payer sees ``notification_text``)."""


# ── orders (topic payments.order, key = order id) ───────────────────────────────────────────


class PaidItem(BaseModel):
    """One line of a paid order, as the platform needs it to grant the item."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str
    kind: str
    """game or dlc."""
    preorder: bool
    """Grant at ``release_date``, not now."""
    release_date: str | None = None
    """ISO date, when the catalog gave one."""
    developer_id: str
    price_minor: int


class OrderPaid(Event):
    """An order was paid in full and its money split (developer shares, platform fee, VAT) in one
    ledger transfer. Grant the items to the buyer (pre-orders at their release date)."""

    type = "order.paid"
    version = 1
    topic = "payments.order"

    order_id: uuid.UUID
    buyer_id: str
    """Platform user id of the buyer (who receives the items)."""
    region: str
    currency: str
    total_minor: int
    wallet_minor: int
    """Part paid from the platform wallet."""
    card_minor: int
    """Part paid through a payment provider (card, SBP, …)."""
    payment_id: uuid.UUID | None = None
    items: list[PaidItem]
    occurred_at: datetime


class OrderExpired(Event):
    """An order was not paid in time; nothing was charged and nothing is held."""

    type = "order.expired"
    version = 1
    topic = "payments.order"

    order_id: uuid.UUID
    buyer_id: str
    total_minor: int
    currency: str
    occurred_at: datetime


# ── payouts (topic payments.payout, key = payee user id) ────────────────────────────────────
# Keyed by the payee: a creator's notifications about their payouts arrive in order.


class _PayoutEvent(Event):
    """A payout reached a status. ``notification_text`` is what the payee is told (Russian)."""

    payout_id: uuid.UUID
    user_id: str
    """Platform user id of the payee."""
    source: str
    """streamer, referral or developer: which balance is paid out."""
    reference: str
    """The business key (``streamer:<id>:2026-W48``, ``referral:<request id>``)."""
    amount_minor: int
    currency: str
    method: str
    """bank_card, bank_account, yoomoney or sbp."""
    provider: str
    status: str
    failure_code: str | None = None
    notification_text: str
    """Russian text for the payee, e.g. «Выплата 1 500,00 ₽ отправлена на карту *4444»."""
    occurred_at: datetime


class PayoutCreated(_PayoutEvent):
    """A payout was created and its amount held on the payee's balance; the provider is called next."""

    type = "payout.created"
    version = 1
    topic = "payments.payout"


class PayoutSucceeded(_PayoutEvent):
    """The provider paid the money out; the hold on the payee's balance is posted."""

    type = "payout.succeeded"
    version = 1
    topic = "payments.payout"


class PayoutFailed(_PayoutEvent):
    """The payout definitely failed (``failure_code``); the money is back on the payee's balance."""

    type = "payout.failed"
    version = 1
    topic = "payments.payout"


class PayoutCanceled(_PayoutEvent):
    """An administrator canceled the payout before a provider had it; the money is back on the balance."""

    type = "payout.canceled"
    version = 1
    topic = "payments.payout"


# ── referral payouts: answers to the Social Service (topic payments.referral_payout, key = request id)
# The contract the Social Service relies on: every request (REST or Kafka, however often it is
# delivered) gets EXACTLY ONE answer, either ``referral_payout.completed`` ("PaymentCompleted") or
# ``referral_payout.failed`` ("PaymentFailed") with a ``reason_code``; ``request_id`` is the id the
# Social Service gave the request.


class _ReferralPayoutAnswer(Event):
    request_id: str
    """The Social Service's request id (the idempotency key of the request)."""
    user_id: str
    referral_id: str
    amount_minor: int
    currency: str
    method: str
    """internal_balance, bank or e_wallet."""
    payout_id: uuid.UUID | None = None
    """The payout that carried the money (bank and e-wallet methods)."""
    occurred_at: datetime


class ReferralPayoutCompleted(_ReferralPayoutAnswer):
    """The reward was paid: credited to the user's wallet, or the payout succeeded ("PaymentCompleted")."""

    type = "referral_payout.completed"
    version = 1
    topic = "payments.referral_payout"


class ReferralPayoutFailed(_ReferralPayoutAnswer):
    """The reward was not paid and nothing stays credited ("PaymentFailed").

    ``reason_code``: ``invalid_amount``, ``payee_not_found``, ``payee_not_verified``,
    ``payout_method_missing``, ``amount_below_minimum``, ``wallet_limit_exceeded``,
    ``no_payout_provider``, ``canceled`` (by an administrator), or the payout's failure code
    (``recipient_not_found``, ``invalid_destination``, ``limit_exceeded``, ``fraud_suspected``,
    ``rejected_by_payee``, ``general_decline``, ``insufficient_funds``, ``issuer_unavailable``,
    ``provider_unavailable``, ``provider_rejected`` …).
    """

    type = "referral_payout.failed"
    version = 1
    topic = "payments.referral_payout"

    reason_code: str
