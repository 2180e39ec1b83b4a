"""REST shapes of the Payment Service API as the client sends and reads them.

* Request models (``PaymentCreate`` ...) forbid unknown fields (a typo fails here, not as a 422)
  and mirror the server's defaults; only the fields you set are sent.
* Response models (``Payment`` ...) ignore fields they do not know, so a newer server that adds
  a field does not break an older client. Statuses and methods are plain strings for the same
  reason; the ``StrEnum`` classes below name the values known today (``PaymentStatus.succeeded
  == "succeeded"``).
* Each model's ``title`` is the name of the server's OpenAPI schema it mirrors
  (``Payment`` ↔ ``PaymentOut``); ``tests/client/test_drift.py`` compares them field by field.
* Money is :class:`MoneyValue` — a decimal string in major units plus an ISO 4217 code, as on the
  wire (``{"value": "499.00", "currency": "RUB"}``). Build one from minor units with
  :meth:`MoneyValue.of_minor`; read minor units with :attr:`MoneyValue.minor`. No floats.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, Field

# ── money ────────────────────────────────────────────────────────────────────────────────────

CURRENCY_EXPONENTS: Final[dict[str, int]] = {
    "VND": 0,
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "ISK": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}
"""ISO 4217 minor-unit digits of the currencies that do not have two (every other one has two)."""

_AMOUNT = re.compile(r"-?\d{1,30}(\.\d{1,4})?")
_CURRENCY = re.compile(r"[A-Z]{3}")


def currency_exponent(currency: str) -> int:
    """Number of minor-unit digits of ``currency`` (2 for RUB: 1 ruble = 100 kopecks)."""
    if not _CURRENCY.fullmatch(currency):
        raise ValueError(f"not an ISO 4217 currency code: {currency!r}")
    return CURRENCY_EXPONENTS.get(currency, 2)


class MoneyValue(BaseModel):
    """Money on the wire: ``{"value": "499.00", "currency": "RUB"}`` (decimal string, major units)."""

    model_config = ConfigDict(frozen=True, extra="ignore", title="MoneyValue")

    value: str
    currency: str

    @classmethod
    def of_minor(cls, amount_minor: int, currency: str) -> MoneyValue:
        """``MoneyValue.of_minor(49900, "RUB")`` is ``499.00 RUB``. ``amount_minor`` must be an int."""
        if type(amount_minor) is not int:
            raise TypeError(f"amount_minor must be an int (minor units), not {type(amount_minor).__name__}")
        exp = currency_exponent(currency)
        sign = "-" if amount_minor < 0 else ""
        digits = str(abs(amount_minor))
        if exp == 0:
            return cls(value=sign + digits, currency=currency)
        digits = digits.rjust(exp + 1, "0")
        return cls(value=f"{sign}{digits[:-exp]}.{digits[-exp:]}", currency=currency)

    @property
    def minor(self) -> int:
        """The amount in minor units (kopecks). Raises ValueError for more decimals than the currency has."""
        if not _AMOUNT.fullmatch(self.value):
            raise ValueError(f"not a decimal amount: {self.value!r}")
        scaled = Decimal(self.value).scaleb(currency_exponent(self.currency))
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{self.value} has more decimals than {self.currency} allows")
        return int(scaled)

    def __str__(self) -> str:
        return f"{self.value} {self.currency}"


# ── enums: the values known today (fields stay plain strings) ───────────────────────────────


class PaymentStatus(StrEnum):
    pending = "pending"
    requires_action = "requires_action"
    authorized = "authorized"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"
    expired = "expired"


class PaymentMethod(StrEnum):
    bank_card = "bank_card"
    sbp = "sbp"
    yoomoney = "yoomoney"
    sberpay = "sberpay"
    mobile = "mobile"


WALLET: Final = "wallet"
"""``method`` of a donation, order payment or referral payout paid from the platform wallet."""


class RefundStatus(StrEnum):
    pending_review = "pending_review"
    processing = "processing"
    unknown = "unknown"
    succeeded = "succeeded"
    failed = "failed"
    rejected = "rejected"


class RefundDestination(StrEnum):
    original_method = "original_method"
    wallet = "wallet"


class OrderStatus(StrEnum):
    pending = "pending"
    awaiting_payment = "awaiting_payment"
    paid = "paid"
    canceled = "canceled"
    expired = "expired"


class TopUpStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class DonationStatus(StrEnum):
    pending = "pending"
    processed = "processed"
    failed = "failed"


class DonationSource(StrEnum):
    payment = "payment"
    wallet = "wallet"


class ReferralPayoutMethod(StrEnum):
    internal_balance = "internal_balance"
    bank = "bank"
    e_wallet = "e_wallet"


class ReferralPayoutStatus(StrEnum):
    pending = "pending"
    completed = "completed"
    failed = "failed"


class PayoutStatus(StrEnum):
    pending = "pending"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


class PayoutSource(StrEnum):
    streamer = "streamer"
    referral = "referral"
    developer = "developer"


class PayoutMethod(StrEnum):
    bank_card = "bank_card"
    bank_account = "bank_account"
    yoomoney = "yoomoney"
    sbp = "sbp"


ENUMS: Final[tuple[type[StrEnum], ...]] = (
    PaymentStatus,
    PaymentMethod,
    RefundStatus,
    RefundDestination,
    OrderStatus,
    TopUpStatus,
    DonationStatus,
    DonationSource,
    ReferralPayoutMethod,
    ReferralPayoutStatus,
    PayoutStatus,
    PayoutSource,
    PayoutMethod,
)
"""Each mirrors the server's OpenAPI enum of the same name (checked by the drift test)."""


# ── bases ────────────────────────────────────────────────────────────────────────────────────


class RequestModel(BaseModel):
    """A request body: unknown fields are refused here; only the fields you set are sent."""

    model_config = ConfigDict(extra="forbid")

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class ResponseModel(BaseModel):
    """A response body: fields added by a newer server are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    client_only_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields the client fills from elsewhere (a response header), not from the body."""


# ── payments ─────────────────────────────────────────────────────────────────────────────────


class PaymentCreate(RequestModel):
    """``POST /v1/payments``. ``payer_id`` only for internal services acting for a user."""

    model_config = ConfigDict(title="PaymentCreate")

    amount: MoneyValue
    method: str
    description: str
    return_url: str
    order_reference: str | None = None
    capture: bool = True
    provider: str | None = None
    payer_id: str | None = None
    payer_phone: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class PaymentCapture(RequestModel):
    model_config = ConfigDict(title="PaymentCapture")

    amount: MoneyValue | None = None


class PaymentCancel(RequestModel):
    model_config = ConfigDict(title="PaymentCancel")

    reason: str | None = None


class CustomerAction(ResponseModel):
    """What the customer must do: open ``url`` (3-DS, redirect) or scan ``qr_payload`` (SBP)."""

    model_config = ConfigDict(title="CustomerActionOut")

    type: str
    url: str | None = None
    qr_payload: str | None = None


class Card(ResponseModel):
    model_config = ConfigDict(title="CardOut")

    scheme: str
    last4: str


class PaymentAttempt(ResponseModel):
    model_config = ConfigDict(title="AttemptOut")

    id: uuid.UUID
    number: int
    provider: str
    status: str
    decline_code: str | None = None
    error_code: str | None = None
    failover: bool
    created_at: datetime


class Payment(ResponseModel):
    model_config = ConfigDict(title="PaymentOut")

    id: uuid.UUID
    status: str
    amount: MoneyValue
    captured_amount: MoneyValue
    refunded_amount: MoneyValue
    method: str
    capture_mode: str
    purpose: str
    description: str
    order_reference: str | None = None
    metadata: dict[str, str]
    payer_id: str
    provider: str | None = None
    action: CustomerAction | None = None
    decline_code: str | None = None
    failure_message: str | None = None
    card: Card | None = None
    expires_at: datetime
    capture_before: datetime | None = None
    created_at: datetime
    updated_at: datetime
    attempts: list[PaymentAttempt]


class PaymentList(ResponseModel):
    model_config = ConfigDict(title="PaymentList")

    items: list[Payment]
    next_cursor: str | None = None


# ── refunds ──────────────────────────────────────────────────────────────────────────────────


class RefundCreate(RequestModel):
    """``POST /v1/refunds``: everything left of the payment when ``amount`` is omitted."""

    model_config = ConfigDict(title="RefundCreate")

    payment_id: uuid.UUID
    amount: MoneyValue | None = None
    destination: str = RefundDestination.original_method.value
    reason: str


class Refund(ResponseModel):
    model_config = ConfigDict(title="RefundOut")

    id: uuid.UUID
    payment_id: uuid.UUID
    payer_id: str
    status: str
    amount: MoneyValue
    destination: str
    reason: str
    decision: str | None = None
    findings: list[str]
    playtime_minutes: int | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    review_note: str | None = None
    provider: str | None = None
    error_code: str | None = None
    created_at: datetime
    updated_at: datetime
    succeeded_at: datetime | None = None


class RefundList(ResponseModel):
    model_config = ConfigDict(title="RefundList")

    items: list[Refund]
    next_cursor: str | None = None


# ── orders and wallet top-ups ────────────────────────────────────────────────────────────────


class OrderCreate(RequestModel):
    """``POST /v1/orders``: catalog item ids only; prices come from the catalog.
    ``buyer_id``/``region`` only for internal services buying for a user."""

    model_config = ConfigDict(title="OrderCreate")

    items: list[str]
    buyer_id: str | None = None
    region: str | None = None


class OrderPay(RequestModel):
    """``{"method": "wallet"}``, a provider method with ``return_url``, or both (``use_wallet``)."""

    model_config = ConfigDict(title="OrderPay")

    method: str
    use_wallet: bool = False
    return_url: str | None = None
    provider: str | None = None
    payer_phone: str | None = None


class OrderLine(ResponseModel):
    model_config = ConfigDict(title="OrderLineOut")

    item_id: str
    kind: str
    title: str
    base_game_id: str | None = None
    developer_id: str
    preorder: bool
    release_date: date | None = None
    list_price: MoneyValue
    discount_percent: int
    price: MoneyValue
    vat: MoneyValue


class OrderPayment(ResponseModel):
    model_config = ConfigDict(title="OrderPaymentOut")

    id: uuid.UUID
    status: str
    amount: MoneyValue
    method: str
    provider: str | None = None
    action: dict[str, str | None] | None = None
    decline_code: str | None = None


class Order(ResponseModel):
    model_config = ConfigDict(title="OrderOut")

    id: uuid.UUID
    status: str
    buyer_id: str
    region: str
    total: MoneyValue
    vat: MoneyValue
    vat_percent: str
    tender: str | None = None
    wallet_amount: MoneyValue
    provider_amount: MoneyValue
    payment_id: uuid.UUID | None = None
    payment: OrderPayment | None = None
    failure_code: str | None = None
    lines: list[OrderLine]
    expires_at: datetime
    paid_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class OrderList(ResponseModel):
    model_config = ConfigDict(title="OrderList")

    items: list[Order]
    next_cursor: str | None = None


class TopUpCreate(RequestModel):
    model_config = ConfigDict(title="TopUpCreate")

    amount: MoneyValue
    method: str
    return_url: str
    provider: str | None = None
    payer_phone: str | None = None


class TopUp(ResponseModel):
    model_config = ConfigDict(title="TopUpOut")

    id: uuid.UUID
    status: str
    amount: MoneyValue
    method: str
    payment: OrderPayment | None = None
    failure_code: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


# ── wallets ──────────────────────────────────────────────────────────────────────────────────


class WalletLimits(ResponseModel):
    model_config = ConfigDict(title="WalletLimits")

    max_balance: MoneyValue
    daily_top_up: MoneyValue
    top_up_left_today: MoneyValue


class Wallet(ResponseModel):
    """``balance`` is settled; ``available`` = balance minus ``pending`` holds."""

    model_config = ConfigDict(title="Wallet")

    user_id: str
    currency: str
    balance: MoneyValue
    available: MoneyValue
    pending: MoneyValue
    limits: WalletLimits


class WalletTransaction(ResponseModel):
    """One wallet line: ``direction`` credit/debit, ``amount`` always positive."""

    model_config = ConfigDict(title="WalletTransaction")

    id: str
    transfer_id: uuid.UUID
    direction: str
    amount: MoneyValue
    status: str
    reason: str
    reference: str
    created_at: datetime


class WalletTransactionPage(ResponseModel):
    model_config = ConfigDict(title="WalletTransactionPage")

    items: list[WalletTransaction]
    next_cursor: str | None


class UserWallet(ResponseModel):
    """``GET /v1/admin/wallets/{user_id}``: the wallet and its latest lines."""

    model_config = ConfigDict(title="AdminWallet")

    wallet: Wallet
    recent: WalletTransactionPage


# ── donations ────────────────────────────────────────────────────────────────────────────────


class DonationCreate(RequestModel):
    """``POST /v1/donations``: ``method`` is a payment method (with ``return_url``) or ``"wallet"``.
    ``donor_id`` only for internal services (the Streaming Service) acting for a viewer."""

    model_config = ConfigDict(title="DonationCreate")

    streamer_id: str
    amount: MoneyValue
    method: str
    message: str | None = None
    display_name: str | None = None
    return_url: str | None = None
    provider: str | None = None
    payer_phone: str | None = None
    donor_id: str | None = None


class DonationPayment(ResponseModel):
    model_config = ConfigDict(title="DonationPaymentOut")

    id: uuid.UUID
    status: str
    action: CustomerAction | None = None


class Donation(ResponseModel):
    model_config = ConfigDict(title="DonationOut")

    id: uuid.UUID
    status: str
    streamer_id: str
    donor_id: str
    source: str
    method: str
    amount: MoneyValue
    fee: MoneyValue
    streamer_amount: MoneyValue
    display_name: str
    message: str | None = None
    alert_id: int | None = None
    failure_code: str | None = None
    payment: DonationPayment | None = None
    created_at: datetime
    processed_at: datetime | None = None


class OverlayToken(ResponseModel):
    """A rotated overlay token. ``token`` comes from the ``Overlay-Token`` header of the first
    answer only: a replay under the same Idempotency-Key has ``token = None`` (it is not stored)."""

    model_config = ConfigDict(title="OverlayTokenOut")
    client_only_fields: ClassVar[frozenset[str]] = frozenset({"token"})

    streamer_id: str
    token_hint: str
    rotated_at: datetime
    websocket_path: str = "/v1/ws/donations"
    token: str | None = None


# ── referral payouts and payouts ─────────────────────────────────────────────────────────────


class ReferralPayoutCreate(RequestModel):
    """``POST /v1/referral-payouts``: idempotent by ``request_id`` (same id + same content = the same
    request; other content under a known id = 409 ``referral_request_conflict``)."""

    model_config = ConfigDict(title="ReferralPayoutCreate")

    request_id: str
    user_id: str
    amount: MoneyValue
    reason: str
    referral_id: str
    method: str


class ReferralPayout(ResponseModel):
    """A referral payout request; ``status`` pending → completed | failed (``failure_code``)."""

    model_config = ConfigDict(title="ReferralPayoutOut")

    request_id: str
    status: str
    user_id: str
    amount: MoneyValue
    reason: str
    referral_id: str
    method: str
    failure_code: str | None = None
    payout_id: uuid.UUID | None = None
    payout_status: str | None = None
    created_at: datetime
    answered_at: datetime | None = None


class PayoutAttempt(ResponseModel):
    model_config = ConfigDict(title="PayoutAttemptOut")

    id: uuid.UUID
    number: int
    provider: str
    status: str
    provider_status: str | None = None
    failure_code: str | None = None
    error_code: str | None = None
    created_at: datetime


class Payout(ResponseModel):
    model_config = ConfigDict(title="PayoutOut")

    id: uuid.UUID
    user_id: str
    source: str
    reference: str
    status: str
    amount: MoneyValue
    method: str
    destination: str
    provider: str
    failure_code: str | None = None
    failure_message: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    succeeded_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: list[PayoutAttempt]


# ── identity ─────────────────────────────────────────────────────────────────────────────────


class WhoAmI(ResponseModel):
    """``GET /v1/me``: who the token says the caller is."""

    model_config = ConfigDict(title="WhoAmI")

    kind: str
    subject: str
    scopes: list[str]
