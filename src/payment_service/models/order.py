"""Orders of catalog items, their lines, and wallet top-ups (the ``order`` module owns their SQL)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment_service.models.base import Base, TimestampedModel, str_enum
from payment_service.order.states import OrderStatus, Tender, TopUpStatus


class Order(TimestampedModel, Base):
    """A buyer's order of catalog items, priced from the catalog for the buyer's region.

    Its ledger reference is ``order:<id>``: the wallet hold, and the split transfer
    (``order:<id>:split``: order clearing → developer balances, platform fees, VAT payable).
    """

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("total_minor > 0", name="total_positive"),
        CheckConstraint(
            "vat_minor >= 0 AND developer_minor >= 0 AND fee_minor >= 0 AND vat_minor + developer_minor + fee_minor = total_minor",
            name="split_sums_to_total",
        ),
        CheckConstraint(
            "wallet_minor >= 0 AND card_minor >= 0 AND wallet_minor + card_minor IN (0, total_minor)",
            name="tender_covers_total",
        ),
        CheckConstraint("(status = 'paid') = (paid_at IS NOT NULL)", name="paid_at_when_paid"),
        Index("ix_orders_buyer_created", "buyer_id", "created_at", "id"),
        Index("ix_orders_unpaid_expiry", "expires_at", postgresql_where=text("status = 'pending'")),
        Index("ix_orders_payment", "payment_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    buyer_id: Mapped[str] = mapped_column(String(100), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    """Principal key of the caller (``user:42``, ``service:social``)."""
    region: Mapped[str] = mapped_column(String(2), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[OrderStatus] = mapped_column(str_enum(OrderStatus, 24), nullable=False)
    total_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    vat_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False)
    """The VAT rate of the split (re-decided on the day the money arrives, the tax point)."""
    vat_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    developer_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tender: Mapped[Tender | None] = mapped_column(str_enum(Tender, 16))
    """How the current (or last) payment round pays; None before the first one."""
    method: Mapped[str | None] = mapped_column(String(32))
    """``wallet`` or the payment method of the round (bank_card, sbp …)."""
    wallet_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    card_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    """The provider part of the round (any method, not only cards)."""
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id"))
    """The payment of the current (or last) round."""
    wallet_hold_id: Mapped[uuid.UUID | None] = mapped_column()
    """Ledger hold of the wallet part of the current (or last) round."""
    split_transfer_id: Mapped[uuid.UUID | None] = mapped_column()
    rounds: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    """Payment rounds started (the payment's order reference is ``order:<id>:<round>``)."""
    request_key: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    """Id of the Idempotency-Key claim that created it."""
    pay_request_key: Mapped[uuid.UUID | None] = mapped_column()
    """Id of the Idempotency-Key claim that started the current round (a retry resumes it)."""
    failure_code: Mapped[str | None] = mapped_column(String(64))
    """Why the last round failed (insufficient_wallet_funds, payment_failed, card decline code …)."""
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    """When it expired or was canceled."""

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", lazy="raise", order_by="OrderLine.position", cascade="all, delete-orphan"
    )


class OrderLine(Base):
    """One catalog item of an order, with its price and split as settled."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("price_minor > 0 AND list_price_minor >= price_minor", name="price_positive"),
        CheckConstraint(
            "vat_minor >= 0 AND developer_minor >= 0 AND fee_minor >= 0 AND vat_minor + developer_minor + fee_minor = price_minor",
            name="split_sums_to_price",
        ),
        CheckConstraint("developer_percent >= 0 AND developer_percent <= 100", name="share_is_percent"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    base_game_id: Mapped[str | None] = mapped_column(String(64))
    developer_id: Mapped[str] = mapped_column(String(64), nullable=False)
    developer_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False)
    preorder: Mapped[bool] = mapped_column(Boolean, nullable=False)
    release_date: Mapped[date | None] = mapped_column(Date)
    list_price_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    discount_percent: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    price_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    vat_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    developer_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)

    order: Mapped[Order] = relationship(back_populates="lines", lazy="raise")


class WalletTopUp(TimestampedModel, Base):
    """Money put into a player's wallet through a payment (purpose ``wallet_top_up``).

    The payment module credits the wallet when the payment succeeds (ledger key
    ``payment:<id>:charge``: once, whatever the number of webhooks); this row tracks the top-up for
    its owner and counts open top-ups against the wallet limits.
    """

    __tablename__ = "wallet_top_ups"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_wallet_top_ups_user_created", "user_id", "created_at", "id"),
        Index("ix_wallet_top_ups_open", "user_id", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(100), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    method: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[TopUpStatus] = mapped_column(str_enum(TopUpStatus, 16), nullable=False)
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id"), unique=True)
    request_key: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column()
