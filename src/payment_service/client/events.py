"""Events of the Payment Service for the services that consume them, and the requests they send it.

The Payment Service publishes CloudEvents 1.0 in Kafka **binary mode**: the context attributes
are headers (``ce_id``, ``ce_source``, ``ce_type``, ``ce_dataversion``, ``ce_time``,
``ce_subject``, ``ce_partitionkey``, ``ce_correlationid``, ``ce_sequence``), the value is the JSON
``data`` and the Kafka key is the aggregate id (see ``docs/events.md`` and ``docs/client.md``).

Consume::

    event = parse_event(record.headers, record.value)
    match event.data:
        case DonationProcessed() as donation: show_alert(donation)
        case ReferralPayoutFailed() as answer: mark_failed(answer.request_id, answer.reason_code)
        case GenericEventData(): pass  # a type or version this client does not know: skip it

* deduplicate on ``(event.source, event.id)`` — delivery is at least once;
* an unknown ``type``, an unknown ``dataversion`` or data that does not fit the model is returned
  as :class:`GenericEventData` (with the reason and the raw JSON), never raised: a newer Payment
  Service must not stop an older consumer. Only a message that is no CloudEvent at all raises
  :class:`InvalidEnvelope`;
* payload models ignore fields they do not know (the server adds optional fields without a new
  version; a breaking change is a new ``dataversion`` published alongside the old one).

Publish a request (the Social Service's referral payouts, the Streaming Service's wallet
donations) with :func:`build_event`, which returns the topic, key, headers and value to send.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

SPECVERSION: Final = "1.0"
SOURCE: Final = "payment-service"
"""``ce_source`` of every event the Payment Service publishes."""
JSON_CONTENT_TYPE: Final = "application/json"
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"

# ── topics (logical names; the deployment may prepend an environment prefix such as "stage.") ─

TOPIC_PAYMENTS: Final = "payments.payment"
"""Payment status events and ``payment.refunded``; key = payment id."""
TOPIC_DONATIONS: Final = "payments.donation"
"""``donation.processed`` / ``donation.failed``; key = streamer id (a channel's alerts in order)."""
TOPIC_REFUNDS: Final = "payments.refund"
"""Refund status events; key = refund id."""
TOPIC_ORDERS: Final = "payments.order"
"""``order.paid`` / ``order.expired``; key = order id."""
TOPIC_PAYOUTS: Final = "payments.payout"
"""Payout status events; key = payee user id."""
TOPIC_REFERRAL_PAYOUTS: Final = "payments.referral_payout"
"""Exactly one answer per referral payout request; key = request id."""
TOPIC_SYSTEM: Final = "payments.system"
"""Diagnostic events; consumers ignore them."""

TOPIC_REFERRAL_PAYOUT_REQUESTS: Final = "social.referral_payout_requests"
"""Where the Social Service publishes referral payout requests (source ``social-service``)."""
TOPIC_DONATION_REQUESTS: Final = "streaming.donation_requests"
"""Where the Streaming Service publishes wallet donation requests (source ``streaming-service``)."""


# ── payloads ─────────────────────────────────────────────────────────────────────────────────

_REGISTRY: dict[tuple[str, int], type[EventPayload]] = {}


class EventPayload(BaseModel):
    """``data`` of an event the Payment Service publishes. Subclasses set ``type``/``version``/``topic``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: ClassVar[str]
    version: ClassVar[int]
    topic: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "type" in cls.__dict__:
            key = (cls.type, cls.version)
            if key in _REGISTRY and _REGISTRY[key] is not cls:
                raise TypeError(f"event {cls.type} v{cls.version} is already defined by {_REGISTRY[key].__qualname__}")
            _REGISTRY[key] = cls


def payload_class(type_: str, version: int) -> type[EventPayload] | None:
    """The model of ``type_`` at ``version``, or None when this client does not know it."""
    return _REGISTRY.get((type_, version))


def payload_classes() -> list[type[EventPayload]]:
    """Every event model this client knows, sorted by topic, type and version."""
    return sorted(_REGISTRY.values(), key=lambda c: (c.topic, c.type, c.version))


class DiagnosticPing(EventPayload):
    """No business meaning (proves the pipeline end to end): ignore it."""

    type = "system.diagnostic_ping"
    version = 1
    topic = TOPIC_SYSTEM

    message: str = ""
    n: int = 0


# payments.payment


class _PaymentStatusEvent(EventPayload):
    payment_id: uuid.UUID
    payer_id: str
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
    type = "payment.pending"
    version = 1
    topic = TOPIC_PAYMENTS


class PaymentRequiresAction(_PaymentStatusEvent):
    type = "payment.requires_action"
    version = 1
    topic = TOPIC_PAYMENTS


class PaymentAuthorized(_PaymentStatusEvent):
    type = "payment.authorized"
    version = 1
    topic = TOPIC_PAYMENTS


class PaymentSucceeded(_PaymentStatusEvent):
    """The money was captured: grant what was bought."""

    type = "payment.succeeded"
    version = 1
    topic = TOPIC_PAYMENTS


class PaymentFailed(_PaymentStatusEvent):
    type = "payment.failed"
    version = 1
    topic = TOPIC_PAYMENTS


class PaymentCanceled(_PaymentStatusEvent):
    type = "payment.canceled"
    version = 1
    topic = TOPIC_PAYMENTS


class PaymentExpired(_PaymentStatusEvent):
    type = "payment.expired"
    version = 1
    topic = TOPIC_PAYMENTS


class PaymentRefundRequired(EventPayload):
    """Money arrived for a payment already given up; operations refund it."""

    type = "payment.refund_required"
    version = 1
    topic = TOPIC_PAYMENTS

    payment_id: uuid.UUID
    attempt_id: uuid.UUID
    provider: str
    amount_minor: int
    currency: str
    reason: str
    provider_payment_id: str | None = None
    """The provider's payment that took the money (refund that one)."""
    occurred_at: datetime


class PaymentRefunded(EventPayload):
    """One refund of the payment succeeded; ``refunded_minor`` is the running total."""

    type = "payment.refunded"
    version = 1
    topic = TOPIC_PAYMENTS

    payment_id: uuid.UUID
    refund_id: uuid.UUID
    payer_id: str
    purpose: str
    order_reference: str | None = None
    destination: str
    amount_minor: int
    refunded_minor: int
    captured_minor: int
    fully_refunded: bool
    currency: str
    occurred_at: datetime


# payments.donation


class DonationProcessed(EventPayload):
    """A donation was paid and split. ``alert_seq`` is its position in the streamer's alert log
    (1, 2, 3 … without gaps); ``request_id`` the CloudEvents id of the Streaming Service's
    request, if it came from one."""

    type = "donation.processed"
    version = 1
    topic = TOPIC_DONATIONS

    donation_id: uuid.UUID
    streamer_id: str
    donor_id: str
    source: str
    method: str
    payment_id: uuid.UUID | None = None
    request_id: str | None = None
    amount_minor: int
    streamer_amount_minor: int
    fee_minor: int
    currency: str
    alert_seq: int
    display_name: str
    message: str | None = None
    occurred_at: datetime


class DonationFailed(EventPayload):
    """A donation could not be paid (``reason``: insufficient_funds, payment_failed …); no money moved."""

    type = "donation.failed"
    version = 1
    topic = TOPIC_DONATIONS

    donation_id: uuid.UUID
    streamer_id: str
    donor_id: str
    source: str
    payment_id: uuid.UUID | None = None
    request_id: str | None = None
    amount_minor: int
    currency: str
    reason: str
    occurred_at: datetime


# payments.refund


class _RefundEvent(EventPayload):
    refund_id: uuid.UUID
    payment_id: uuid.UUID
    payer_id: str
    order_reference: str | None = None
    amount_minor: int
    currency: str
    destination: str
    status: str
    notification_text: str
    """Russian text for the payer."""
    occurred_at: datetime


class RefundRequested(_RefundEvent):
    type = "refund.requested"
    version = 1
    topic = TOPIC_REFUNDS

    findings: list[str] = []


class RefundSucceeded(_RefundEvent):
    type = "refund.succeeded"
    version = 1
    topic = TOPIC_REFUNDS


class RefundFailed(_RefundEvent):
    type = "refund.failed"
    version = 1
    topic = TOPIC_REFUNDS

    error_code: str | None = None


class RefundRejected(_RefundEvent):
    type = "refund.rejected"
    version = 1
    topic = TOPIC_REFUNDS

    reason: str


# payments.order


class PaidItem(BaseModel):
    """One line of a paid order: grant ``item_id`` (at ``release_date`` when ``preorder``)."""

    model_config = ConfigDict(frozen=True, extra="ignore", title="PaidItem")

    item_id: str
    kind: str
    preorder: bool
    release_date: str | None = None
    developer_id: str
    price_minor: int


class OrderPaid(EventPayload):
    """An order was paid in full: grant the items to the buyer."""

    type = "order.paid"
    version = 1
    topic = TOPIC_ORDERS

    order_id: uuid.UUID
    buyer_id: str
    region: str
    currency: str
    total_minor: int
    wallet_minor: int
    card_minor: int
    payment_id: uuid.UUID | None = None
    items: list[PaidItem]
    occurred_at: datetime


class OrderExpired(EventPayload):
    type = "order.expired"
    version = 1
    topic = TOPIC_ORDERS

    order_id: uuid.UUID
    buyer_id: str
    total_minor: int
    currency: str
    occurred_at: datetime


# payments.payout


class _PayoutEvent(EventPayload):
    payout_id: uuid.UUID
    user_id: str
    source: str
    """streamer, referral or developer."""
    reference: str
    amount_minor: int
    currency: str
    method: str
    provider: str
    status: str
    failure_code: str | None = None
    notification_text: str
    """Russian text for the payee."""
    occurred_at: datetime


class PayoutCreated(_PayoutEvent):
    type = "payout.created"
    version = 1
    topic = TOPIC_PAYOUTS


class PayoutSucceeded(_PayoutEvent):
    type = "payout.succeeded"
    version = 1
    topic = TOPIC_PAYOUTS


class PayoutFailed(_PayoutEvent):
    type = "payout.failed"
    version = 1
    topic = TOPIC_PAYOUTS


class PayoutCanceled(_PayoutEvent):
    type = "payout.canceled"
    version = 1
    topic = TOPIC_PAYOUTS


# payments.referral_payout: exactly one answer per request


class _ReferralPayoutAnswer(EventPayload):
    request_id: str
    user_id: str
    referral_id: str
    amount_minor: int
    currency: str
    method: str
    payout_id: uuid.UUID | None = None
    occurred_at: datetime


class ReferralPayoutCompleted(_ReferralPayoutAnswer):
    """The reward was paid ("PaymentCompleted")."""

    type = "referral_payout.completed"
    version = 1
    topic = TOPIC_REFERRAL_PAYOUTS


class ReferralPayoutFailed(_ReferralPayoutAnswer):
    """The reward was not paid and nothing stays credited ("PaymentFailed"); see ``reason_code``."""

    type = "referral_payout.failed"
    version = 1
    topic = TOPIC_REFERRAL_PAYOUTS

    reason_code: str


# ── requests other services publish to the Payment Service ───────────────────────────────────


class RequestPayload(BaseModel):
    """``data`` of a request event for the Payment Service; :func:`build_event` publishes it."""

    model_config = ConfigDict(extra="forbid")

    type: ClassVar[str]
    topic: ClassVar[str]
    version: ClassVar[int] = 1

    def default_key(self, event_id: str) -> str:
        raise NotImplementedError


class ReferralPayoutRequested(RequestPayload):
    """The Social Service asks for a referral reward. ``request_id`` defaults to the event id; the
    same id over Kafka or REST is one request. The answer is one ``referral_payout.*`` event."""

    type = "social.referral_payout_requested"
    topic = TOPIC_REFERRAL_PAYOUT_REQUESTS

    request_id: str | None = None
    user_id: str
    amount_minor: int
    currency: str
    reason: str
    referral_id: str
    method: str
    """internal_balance, bank or e_wallet."""

    def default_key(self, event_id: str) -> str:
        return self.request_id or event_id


class DonationRequested(RequestPayload):
    """The Streaming Service asks to pay a streamer from a viewer's wallet (e.g. a chat command).
    The answer is ``donation.processed`` or ``donation.failed`` with ``request_id`` = the event id."""

    type = "streaming.donation_requested"
    topic = TOPIC_DONATION_REQUESTS

    viewer_id: str
    streamer_id: str
    amount_minor: int
    currency: str
    message: str | None = None
    display_name: str | None = None

    def default_key(self, event_id: str) -> str:
        return self.viewer_id


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A Kafka message to send as is: ``producer.send(topic, value=value, key=key, headers=headers)``."""

    topic: str
    """Logical topic: prepend your environment's prefix, if any."""
    key: bytes
    headers: list[tuple[str, bytes]]
    value: bytes
    event_id: str


def _format_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_event(
    payload: RequestPayload,
    *,
    source: str,
    id: str | None = None,
    time: datetime | None = None,
    key: str | None = None,
    correlation_id: str | None = None,
) -> OutgoingMessage:
    """The binary-mode CloudEvent of a request. ``source`` is your service's CloudEvents source
    (``social-service``, ``streaming-service`` — the Payment Service only accepts known sources);
    ``id`` defaults to a new UUID (keep it to resend the very same event)."""
    event_id = id or str(uuid.uuid4())
    at = time or datetime.now(UTC)
    message_key = key or payload.default_key(event_id)
    attrs: list[tuple[str, str | None]] = [
        ("ce_specversion", SPECVERSION),
        ("ce_id", event_id),
        ("ce_source", source),
        ("ce_type", payload.type),
        ("ce_time", _format_time(at)),
        ("ce_dataversion", str(payload.version)),
        ("ce_subject", message_key),
        ("ce_partitionkey", message_key),
        ("ce_correlationid", correlation_id),
        ("content-type", JSON_CONTENT_TYPE),
    ]
    return OutgoingMessage(
        topic=payload.topic,
        key=message_key.encode(),
        headers=[(name, value.encode()) for name, value in attrs if value is not None],
        value=payload.model_dump_json(exclude_none=True).encode(),
        event_id=event_id,
    )


# ── parsing ──────────────────────────────────────────────────────────────────────────────────


class InvalidEnvelope(ValueError):
    """Not a readable CloudEvent (no ``ce_specversion`` and not structured mode, a missing
    ``id``/``source``/``type``, data that is not JSON): it cannot even be deduplicated."""


GenericReason = Literal["unknown_type", "unknown_version", "invalid_data"]


@dataclass(frozen=True, slots=True)
class GenericEventData:
    """``data`` of an event this client cannot type: skip it (or log it), never fail on it."""

    type: str
    version: int | None
    reason: GenericReason
    raw: Any
    """The decoded JSON data."""
    error: str | None = None
    """Why the data did not fit the known model (``invalid_data``)."""


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One consumed event: the CloudEvents context and the typed ``data``."""

    id: str
    source: str
    type: str
    data: EventPayload | GenericEventData
    specversion: str = SPECVERSION
    dataversion: int | None = None
    time: datetime | None = None
    subject: str | None = None
    partitionkey: str | None = None
    """The aggregate id (= the Kafka key)."""
    correlationid: str | None = None
    sequence: int | None = None
    """Outbox order of the event; increases per key in publication order (spot reordering)."""
    extensions: dict[str, str] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return isinstance(self.data, EventPayload)


_ATTRIBUTES = frozenset(
    {
        "id",
        "source",
        "type",
        "specversion",
        "time",
        "subject",
        "dataversion",
        "partitionkey",
        "correlationid",
        "sequence",
    }
)

Headers = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]


def _text_headers(headers: Headers) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in pairs:
        out[name.lower()] = value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")
    return out


def _parse_time(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def _parse_int(raw: object) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(str(raw))
    except ValueError:
        return None


def _loads(value: bytes | str | None) -> Any:
    if value is None or value in (b"", ""):
        return None
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEnvelope(f"event data is not JSON: {exc}") from None


def _typed(type_: str, version: int | None, data: Any) -> EventPayload | GenericEventData:
    cls = payload_class(type_, version if version is not None else 1)
    if cls is None:
        known_type = any(t == type_ for t, _ in _REGISTRY)
        reason: GenericReason = "unknown_version" if known_type else "unknown_type"
        return GenericEventData(type=type_, version=version, reason=reason, raw=data)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        return GenericEventData(type=type_, version=version, reason="invalid_data", raw=data, error=str(exc))


def parse_event(headers: Headers, value: bytes | str | None) -> ReceivedEvent:
    """Read a consumed Kafka message (headers as a list of pairs or a mapping; bytes or text) as
    a Payment Service event with typed ``data``.

    Binary mode (``ce_*`` headers; what the Payment Service publishes) and structured mode
    (``content-type: application/cloudevents+json``) are both read. A missing ``ce_dataversion``
    is version 1. Raises :class:`InvalidEnvelope` only when the message is no CloudEvent.
    """
    text = _text_headers(headers)
    if text.get("content-type", "").startswith(STRUCTURED_CONTENT_TYPE):
        document = _loads(value)
        if not isinstance(document, dict):
            raise InvalidEnvelope("structured CloudEvent is not a JSON object")
        if "data_base64" in document:
            data: Any = _loads(base64.b64decode(str(document["data_base64"])))
        else:
            data = document.get("data")
        attrs: dict[str, Any] = {k: v for k, v in document.items() if k not in {"data", "data_base64"}}
    else:
        if "ce_specversion" not in text:
            raise InvalidEnvelope("not a CloudEvent: no ce_specversion header and not structured mode")
        attrs = {name[3:]: v for name, v in text.items() if name.startswith("ce_")}
        data = _loads(value)
    missing = [name for name in ("id", "source", "type") if not attrs.get(name)]
    if missing:
        raise InvalidEnvelope(f"missing CloudEvents attribute(s): {', '.join(missing)}")
    type_ = str(attrs["type"])
    version = _parse_int(attrs.get("dataversion"))
    return ReceivedEvent(
        id=str(attrs["id"]),
        source=str(attrs["source"]),
        type=type_,
        data=_typed(type_, version, data),
        specversion=str(attrs.get("specversion") or SPECVERSION),
        dataversion=version,
        time=_parse_time(attrs.get("time")),
        subject=str(attrs["subject"]) if attrs.get("subject") else None,
        partitionkey=str(attrs["partitionkey"]) if attrs.get("partitionkey") else None,
        correlationid=str(attrs["correlationid"]) if attrs.get("correlationid") else None,
        sequence=_parse_int(attrs.get("sequence")),
        extensions={k: str(v) for k, v in attrs.items() if k not in _ATTRIBUTES},
    )
