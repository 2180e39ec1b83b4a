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
    idempotent_refund = "idempotent_refund"
    """A refund call repeated with the same idempotency key refunds once and replays the first
    answer (YooKassa's Idempotence-Key, T-Bank's ExternalRequestId, the mobile aggregator's key).
    Without it (Sber ``refund.do``) a refund is never called twice blindly: its outcome is read
    from the payment's refunded total."""


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


# ---- payouts ------------------------------------------------------------------------------------
# Money going OUT to creators and referrers. Destinations carry personal data (bank details,
# phone numbers): their sensitive fields are excluded from ``repr`` and must never be logged; the
# business code keeps them only as Vault Transit ciphertext.


class PayoutMethod(StrEnum):
    """Where a payout goes."""

    bank_card = "bank_card"
    """A Russian bank card, by the provider's card token (YooKassa payout widget); we never see the PAN."""
    bank_account = "bank_account"
    """A Russian bank account: 20-digit account number + BIC + holder name (bank transfer)."""
    yoomoney = "yoomoney"
    """A YooMoney e-wallet number."""
    sbp = "sbp"
    """Faster Payments System by phone number and the recipient's bank (SBP bank id)."""


class ProviderPayoutStatus(StrEnum):
    """Normalized status of a payout at the provider."""

    pending = "pending"
    """Accepted; the money is on its way (or the provider is still deciding)."""
    succeeded = "succeeded"
    """The money reached the recipient's instrument. Final."""
    failed = "failed"
    """Refused or returned; ``failure_code`` says why. Final; nothing left our payout balance."""


class PayoutFailureCode(StrEnum):
    """Normalized reasons a payout fails (provider reasons are mapped into these)."""

    insufficient_funds = "insufficient_funds"
    """OUR payout balance at the provider is too low (top it up; transient)."""
    recipient_not_found = "recipient_not_found"
    """No such account/wallet/phone at the recipient's bank."""
    invalid_destination = "invalid_destination"
    """The destination details are wrong (closed account, bad token, name mismatch)."""
    limit_exceeded = "limit_exceeded"
    """A per-payout or periodic limit of the provider or the recipient's instrument."""
    fraud_suspected = "fraud_suspected"
    issuer_unavailable = "issuer_unavailable"
    """The recipient's bank did not answer (transient)."""
    rejected_by_payee = "rejected_by_payee"
    recipient_check_failed = "recipient_check_failed"
    general_decline = "general_decline"
    unknown = "unknown"


TRANSIENT_PAYOUT_FAILURES = frozenset(
    {PayoutFailureCode.insufficient_funds, PayoutFailureCode.issuer_unavailable, PayoutFailureCode.unknown}
)
"""Failures worth a new attempt later (with a new idempotency key); the others are final."""


def _digits(value: str | None) -> str:
    return "".join(ch for ch in (value or "") if ch.isdigit())


@dataclass(frozen=True, slots=True)
class PayoutDestination:
    """A payout destination. Sensitive fields never appear in ``repr``; log :meth:`masked` only."""

    method: PayoutMethod
    card_token: str | None = field(default=None, repr=False)
    """bank_card: the provider's payout token for the card (from its payout widget)."""
    card_last4: str | None = None
    """bank_card: last four digits reported by the widget, for display."""
    account_number: str | None = field(default=None, repr=False)
    """bank_account: 20 digits; yoomoney: the wallet number (11-33 digits)."""
    bic: str | None = None
    """bank_account: 9-digit BIC of the recipient's bank."""
    holder_name: str | None = field(default=None, repr=False)
    """bank_account: the account holder's full name."""
    inn: str | None = field(default=None, repr=False)
    """bank_account: the holder's taxpayer number (optional)."""
    phone: str | None = field(default=None, repr=False)
    """sbp: E.164 digits without '+' (7XXXXXXXXXX)."""
    bank_id: str | None = None
    """sbp: the recipient's bank in the SBP directory (≤ 12 characters)."""

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """What is wrong with the details for the method (None when they are complete)."""
        m = self.method
        if m is PayoutMethod.bank_card:
            if not self.card_token or len(self.card_token) > 256:
                return "bank_card needs the card token from the payout widget"
            if self.card_last4 is not None and (len(self.card_last4) != 4 or not self.card_last4.isdigit()):
                return "card_last4 must be 4 digits"
        elif m is PayoutMethod.bank_account:
            account, bic = self.account_number or "", self.bic or ""
            if len(account) != 20 or not account.isdigit():
                return "account_number must be 20 digits"
            if len(bic) != 9 or not bic.isdigit() or not bic.startswith("04"):
                return "bic must be 9 digits starting with 04"
            if not account_matches_bic(account, bic):
                return "account_number does not match the bank's BIC (control digit)"
            if not self.holder_name or not self.holder_name.strip() or len(self.holder_name) > 160:
                return "holder_name is required (at most 160 characters)"
            if self.inn is not None and (len(self.inn) not in (10, 12) or not self.inn.isdigit()):
                return "inn must be 10 or 12 digits"
        elif m is PayoutMethod.yoomoney:
            wallet = self.account_number or ""
            if not 11 <= len(wallet) <= 33 or not wallet.isdigit():
                return "a YooMoney wallet number is 11-33 digits"
        elif m is PayoutMethod.sbp:
            phone = self.phone or ""
            if len(phone) != 11 or not phone.startswith("7") or not phone.isdigit():
                return "phone must be 7XXXXXXXXXX"
            if not self.bank_id or len(self.bank_id) > 12:
                return "bank_id of the recipient's bank is required (at most 12 characters)"
        return None

    def masked(self) -> str:
        """A display form that reveals at most the last four digits (safe to store and log)."""
        m = self.method
        if m is PayoutMethod.bank_card:
            return f"card *{self.card_last4}" if self.card_last4 else "card"
        if m is PayoutMethod.bank_account:
            return f"account *{(self.account_number or '')[-4:]} (BIC {self.bic})"
        if m is PayoutMethod.yoomoney:
            return f"YooMoney *{(self.account_number or '')[-4:]}"
        return f"SBP +7 *** ***-{(self.phone or '')[-4:-2]}-{(self.phone or '')[-2:]}"

    def to_json(self) -> dict[str, str]:
        """Every field that is set (for encryption at rest; never log it)."""
        out = {"method": str(self.method)}
        for name in ("card_token", "card_last4", "account_number", "bic", "holder_name", "inn", "phone", "bank_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PayoutDestination:
        known = ("card_token", "card_last4", "account_number", "bic", "holder_name", "inn", "phone", "bank_id")
        return cls(method=PayoutMethod(data["method"]), **{k: data[k] for k in known if data.get(k) is not None})


_ACCOUNT_WEIGHTS = (7, 1, 3) * 8


def account_matches_bic(account: str, bic: str) -> bool:
    """The Bank of Russia control-digit check of a 20-digit account against its bank's BIC.

    The last three digits of the BIC followed by the account (23 digits) are weighted 7, 1, 3, …;
    the sum of the last digits of the products must end in 0 (Bank of Russia regulation 385-P).
    """
    digits = _digits(bic)[-3:] + _digits(account)
    if len(digits) != 23:
        return False
    return sum((int(d) * w) % 10 for d, w in zip(digits, _ACCOUNT_WEIGHTS, strict=False)) % 10 == 0


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    """One payout attempt at one provider. ``idempotency_key`` is our attempt id."""

    amount_minor: int
    currency: str
    destination: PayoutDestination
    description: str
    idempotency_key: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise TypeError("amount_minor must be an int")
        if self.amount_minor <= 0:
            raise ValueError("amount_minor must be positive")
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError("currency must be an ISO 4217 alpha-3 code")


@dataclass(frozen=True, slots=True)
class PayoutResult:
    """A payout as the provider reports it, normalized."""

    provider: str
    provider_payout_id: str
    status: ProviderPayoutStatus
    amount_minor: int
    currency: str
    failure_code: PayoutFailureCode | None = None
    provider_status: str | None = None
    """The provider's own status (and reason), for logs and support."""
    idempotency_key: str | None = None
    """Our attempt id when the provider echoes it (metadata, client reference)."""
    destination_masked: str | None = None
    """What the provider says about the destination (card *4444), never full details."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class PayoutRef:
    """How to find a payout again: by the provider id, or by our attempt id when the answer was lost."""

    idempotency_key: str
    provider_payout_id: str | None = None


@dataclass(frozen=True, slots=True)
class PayoutEvent:
    """A verified, parsed payout webhook; ``payout`` is what the provider's API confirms."""

    provider: str
    external_id: str
    event_type: str
    provider_payout_id: str
    payout: PayoutResult
    ack_body: str = ""


class PayoutCapability(StrEnum):
    status_by_idempotency_key = "status_by_idempotency_key"
    """``get_status`` can find a payout by our attempt id alone (without the provider's id)."""


@runtime_checkable
class PayoutProvider(Protocol):
    """A payout provider adapter. Every method raises only :mod:`payment_service.providers.errors`."""

    name: str
    methods: frozenset[PayoutMethod]
    capabilities: frozenset[PayoutCapability]

    async def create_transfer(self, request: PayoutRequest) -> PayoutResult:
        """Send money to ``request.destination``; idempotent on ``request.idempotency_key``.

        Returns the payout as the provider answers: ``pending``, ``succeeded`` or ``failed`` (a
        refusal is a result with a ``failure_code``, not an exception). Raises ProviderUnavailable
        when nothing was created, ProviderTimeout when the outcome is unknown, ProviderInvalidRequest
        when the provider rejects the request itself, ProviderAmountMismatch when it echoes another
        amount.
        """
        ...

    async def get_status(self, ref: PayoutRef) -> PayoutResult:
        """The provider's current view of the payout. ProviderNotFound when it never got it;
        ProviderOperationNotSupported when it cannot look it up by our key alone."""
        ...

    async def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, remote_addr: str | None = None
    ) -> PayoutEvent:
        """Authenticate and parse a payout webhook; ProviderSignatureInvalid when it cannot be trusted."""
        ...

    async def aclose(self) -> None:
        """Close HTTP clients."""
        ...
