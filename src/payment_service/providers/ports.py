"""Provider ports: what business code calls, and the normalized data it gets back.

Money is always ``amount_minor`` (int, kopecks) plus an ISO 4217 alpha-3 ``currency``; adapters
convert to a provider's unit (YooKassa decimal strings, T-Bank/Sber kopecks) and back. No PAN ever
crosses this boundary: cards are described by :class:`MaskedCard` (first6, last4, scheme).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from payment_service.providers.cards import CardScheme


class PaymentMethod(StrEnum):
    """How the customer pays."""

    bank_card = "bank_card"
    """Card entered on the provider's page (we never see the PAN)."""
    sbp = "sbp"
    """Faster Payments System (QR / deep link); one-stage only."""
    yoomoney = "yoomoney"
    """YooMoney wallet."""
    sberpay = "sberpay"
    """SberPay."""
    mobile = "mobile"
    """Mobile phone balance (MTS, Beeline, MegaFon, Tele2) through an aggregator."""


class ProviderStatus(StrEnum):
    """Normalized status of a payment at the provider."""

    pending = "pending"
    """Created, nothing decided yet, no customer action known."""
    requires_action = "requires_action"
    """The customer must act: follow ``action.url`` (redirect/3-DS), scan ``action.qr_payload`` (SBP)
    or confirm externally (SMS for mobile payments)."""
    authorized = "authorized"
    """Money held (two-stage); capture or void it."""
    succeeded = "succeeded"
    """Money charged (one-stage, or captured)."""
    failed = "failed"
    """Declined or expired; ``decline_code`` says why. Final."""
    canceled = "canceled"
    """Voided/canceled by us before capture. Final."""


class ActionType(StrEnum):
    redirect = "redirect"
    """Send the customer to ``url`` (payment page, 3-DS)."""
    qr = "qr"
    """Render ``qr_payload`` as a QR code (SBP); ``url`` may hold the same link."""
    external = "external"
    """The customer confirms outside our UI (SMS from the mobile operator, bank app push)."""


class DeclineCode(StrEnum):
    """Normalized decline reasons (provider codes are mapped into these)."""

    insufficient_funds = "insufficient_funds"
    card_expired = "card_expired"
    three_ds_failed = "three_ds_failed"
    fraud_suspected = "fraud_suspected"
    issuer_unavailable = "issuer_unavailable"
    call_issuer = "call_issuer"
    general_decline = "general_decline"
    invalid_card = "invalid_card"
    limit_exceeded = "limit_exceeded"
    restricted = "restricted"
    """Method/country/content not allowed for this payer."""
    expired = "expired"
    """The customer did not complete the action in time."""
    canceled_by_payer = "canceled_by_payer"
    unsupported_operator = "unsupported_operator"
    unknown = "unknown"


class RefundStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


@dataclass(frozen=True, slots=True)
class MaskedCard:
    """What we may know about a card: never a full PAN."""

    last4: str
    scheme: CardScheme
    first6: str | None = None
    expiry_month: int | None = None
    expiry_year: int | None = None
    issuer_country: str | None = None

    def __post_init__(self) -> None:
        if len(self.last4) != 4 or not self.last4.isdigit():
            raise ValueError("last4 must be 4 digits")
        if self.first6 is not None and (len(self.first6) != 6 or not self.first6.isdigit()):
            raise ValueError("first6 must be 6 digits")


@dataclass(frozen=True, slots=True)
class CustomerAction:
    type: ActionType
    url: str | None = None
    qr_payload: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiptItem:
    description: str
    amount_minor: int
    """Line total in minor units (quantity is 1 for game keys)."""
    quantity: int = 1
    vat: str = "vat22"
    """Our VAT code: none, vat0, vat10, vat22, vat110, vat122 (mapped per provider)."""
    payment_subject: str = "intellectual_activity"
    payment_mode: str = "full_payment"


@dataclass(frozen=True, slots=True)
class ReceiptData:
    """54-FZ receipt data forwarded to providers that fiscalize for us."""

    items: tuple[ReceiptItem, ...]
    email: str | None = None
    phone: str | None = None
    tax_system_code: int | None = None


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """One payment attempt at one provider. ``idempotency_key`` is our attempt id."""

    amount_minor: int
    currency: str
    method: PaymentMethod
    description: str
    return_url: str
    idempotency_key: str
    capture: bool = True
    """True: one-stage (charge); False: two-stage (hold, then capture/void)."""
    receipt: ReceiptData | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    payer_phone: str | None = None
    """E.164 digits without '+', needed for mobile payments."""
    notification_url: str | None = None
    """Per-payment webhook URL where the provider supports one (T-Bank, Sber)."""

    def __post_init__(self) -> None:
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise TypeError("amount_minor must be an int")
        if self.amount_minor <= 0:
            raise ValueError("amount_minor must be positive")
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError("currency must be an ISO 4217 alpha-3 code")


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """A payment as the provider reports it, normalized."""

    provider: str
    provider_payment_id: str
    status: ProviderStatus
    amount_minor: int
    currency: str
    captured_minor: int = 0
    refunded_minor: int = 0
    action: CustomerAction | None = None
    decline_code: DeclineCode | None = None
    provider_status: str | None = None
    """The provider's own status string, for logs and support."""
    card: MaskedCard | None = None
    fee_minor: int | None = None
    """Provider fee when the provider reports it (YooKassa: amount - income_amount)."""
    idempotency_key: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class RefundResult:
    provider: str
    provider_refund_id: str
    provider_payment_id: str
    status: RefundStatus
    amount_minor: int
    currency: str
    decline_code: DeclineCode | None = None


class EventKind(StrEnum):
    payment = "payment"
    refund = "refund"


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A verified, parsed provider webhook."""

    provider: str
    external_id: str
    """Unique per (provider, event): the inbox dedupes on (provider, external_id)."""
    kind: EventKind
    event_type: str
    """The provider's own event/operation name (payment.succeeded, CONFIRMED, deposited, ...)."""
    provider_payment_id: str
    payment: ProviderResult | None = None
    refund: RefundResult | None = None
    idempotency_key: str | None = None
    """Our attempt id when the provider echoes it (OrderId, orderNumber, metadata)."""
    occurred_at: datetime | None = None
    ack_body: str = ""
    """What to answer with HTTP 200 (T-Bank requires exactly ``OK``)."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class PaymentRef:
    """How to find a payment again: by the provider id, or by our attempt id when the answer was lost."""

    idempotency_key: str
    provider_payment_id: str | None = None


class Capability(StrEnum):
    two_stage = "two_stage"
    partial_capture = "partial_capture"
    partial_refund = "partial_refund"
    status_by_idempotency_key = "status_by_idempotency_key"


@runtime_checkable
class PaymentProvider(Protocol):
    """A payment provider adapter. Every method raises only :mod:`payment_service.providers.errors`."""

    name: str
    methods: frozenset[PaymentMethod]
    capabilities: frozenset[Capability]

    async def authorize(self, request: ChargeRequest) -> ProviderResult:
        """Create the payment (one-stage if ``request.capture`` else a hold).

        Idempotent on ``request.idempotency_key``. Returns ``requires_action`` when the customer must
        act, ``authorized``/``succeeded`` when done synchronously. Raises ProviderDeclined on a
        synchronous decline, ProviderUnavailable when nothing was created, ProviderTimeout when the
        outcome is unknown, ProviderAmountMismatch when the provider echoes another amount.
        """
        ...

    async def capture(self, ref: PaymentRef, *, amount_minor: int | None = None, currency: str) -> ProviderResult:
        """Capture a hold, fully (``amount_minor=None``) or partially where supported."""
        ...

    async def void(self, ref: PaymentRef) -> ProviderResult:
        """Release a hold (cancel an authorized, not captured payment)."""
        ...

    async def refund(self, ref: PaymentRef, *, amount_minor: int, currency: str, idempotency_key: str) -> RefundResult:
        """Refund a captured payment, fully or partially; idempotent on ``idempotency_key``."""
        ...

    async def get_status(self, ref: PaymentRef) -> ProviderResult:
        """The provider's current view of the payment (used by status-sync and webhook re-checks)."""
        ...

    async def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, remote_addr: str | None = None, query: str = ""
    ) -> ProviderEvent:
        """Authenticate and parse a webhook; ProviderSignatureInvalid when it cannot be trusted."""
        ...

    async def aclose(self) -> None:
        """Close HTTP clients."""
        ...
