"""Statuses of orders and wallet top-ups and the moves allowed between them. Pure.

An order is priced from the catalog when it is created and can be paid until it expires. Paying
starts a *payment round*: the wallet part is held and/or a payment (purpose ``order``) is made.
The round ends when the payment succeeds (the order is paid: wallet hold posted, money split) or
fails, is canceled or expires (the wallet hold is released and the order can be paid again,
unless it has expired meanwhile).
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    """Lifecycle of an order."""

    pending = "pending"
    """Priced and waiting to be paid (also after a failed payment round)."""
    awaiting_payment = "awaiting_payment"
    """A payment round is open: a payment is in flight; the wallet part (if any) is held."""
    paid = "paid"
    """Paid in full: the money is split (developer, platform fee, VAT) and ``order.paid`` emitted."""
    expired = "expired"
    """Not paid in time; nothing is held."""
    canceled = "canceled"
    """Canceled by the buyer before paying; nothing is held."""


class Tender(StrEnum):
    """How a payment round pays the order."""

    wallet = "wallet"
    """All from the platform wallet."""
    provider = "provider"
    """All through a payment provider (card, SBP, …)."""
    split_tender = "split"
    """Part from the wallet (held), the rest through a provider; both post together."""


class TopUpStatus(StrEnum):
    """Lifecycle of a wallet top-up."""

    pending = "pending"
    """Its payment is not finished; counted against the limits already."""
    succeeded = "succeeded"
    """The payment succeeded and the wallet was credited (once)."""
    failed = "failed"
    """The payment failed, was canceled or expired; nothing was credited."""


TERMINAL_ORDER = frozenset({OrderStatus.paid, OrderStatus.expired, OrderStatus.canceled})

_O = OrderStatus
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _O.pending: frozenset({_O.awaiting_payment, _O.paid, _O.expired, _O.canceled}),
    _O.awaiting_payment: frozenset({_O.paid, _O.pending, _O.expired}),
    _O.paid: frozenset(),
    _O.expired: frozenset(),
    _O.canceled: frozenset(),
}


class IllegalOrderTransition(ValueError):
    """A move the order lifecycle does not allow."""


def advance_order(current: OrderStatus, target: OrderStatus) -> bool:
    """True when ``current → target`` is a move; False when already there. Raises IllegalOrderTransition."""
    if current is target:
        return False
    if target not in ORDER_TRANSITIONS[current]:
        raise IllegalOrderTransition(f"order cannot go from {current} to {target}")
    return True


def is_payable(status: OrderStatus) -> bool:
    """Whether a new payment round may start."""
    return status is OrderStatus.pending
