"""Statuses of payments and attempts and the only transitions allowed between them. Pure.

A *payment* is the customer's intent to pay an amount; an *attempt* is one try at one provider
(its id is the idempotency key sent to that provider). A payment may have several attempts:
after a definite failure the router fails over to the next provider with a new attempt while
the payment stays ``pending``.

Re-applying the status an object already has is a no-op (duplicate webhooks, status sync racing
a webhook); any other move not listed here is an :class:`IllegalTransition`, never a silent
overwrite.
"""

from __future__ import annotations

from enum import StrEnum


class PaymentStatus(StrEnum):
    """Lifecycle of a payment (intent)."""

    pending = "pending"
    """Created; an attempt is being made or its outcome is awaited."""
    requires_action = "requires_action"
    """The customer must act: 3-DS page, redirect to the provider, SBP QR code."""
    authorized = "authorized"
    """Funds are held by the provider, waiting for capture (two-stage payments)."""
    succeeded = "succeeded"
    """Money is captured; the ledger has the transfer."""
    failed = "failed"
    """Definitely not paid (decline, or every provider failed definitely)."""
    canceled = "canceled"
    """Canceled by the customer, the merchant, or voided before capture."""
    expired = "expired"
    """Not paid or not captured in time; any hold was released."""


class AttemptStatus(StrEnum):
    """Lifecycle of one attempt at one provider."""

    created = "created"
    """Recorded and committed; the provider has not been called yet (or the call is in flight)."""
    pending = "pending"
    """The provider accepted the request and is processing it."""
    requires_action = "requires_action"
    """The provider waits for the customer (3-DS, redirect, QR)."""
    authorized = "authorized"
    """The provider holds the funds; capture or void follows."""
    succeeded = "succeeded"
    """The provider captured the money."""
    failed = "failed"
    """The provider definitely did not take money (decline or definite error)."""
    canceled = "canceled"
    """Voided or canceled at the provider."""
    unknown = "unknown"
    """The call's answer was lost (timeout, dropped connection); status sync must resolve it."""


TERMINAL_PAYMENT = frozenset(
    {PaymentStatus.succeeded, PaymentStatus.failed, PaymentStatus.canceled, PaymentStatus.expired}
)
TERMINAL_ATTEMPT = frozenset({AttemptStatus.succeeded, AttemptStatus.failed, AttemptStatus.canceled})

_P = PaymentStatus
PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    _P.pending: frozenset({_P.requires_action, _P.authorized, _P.succeeded, _P.failed, _P.canceled, _P.expired}),
    _P.requires_action: frozenset({_P.pending, _P.authorized, _P.succeeded, _P.failed, _P.canceled, _P.expired}),
    _P.authorized: frozenset({_P.succeeded, _P.canceled, _P.expired}),
    _P.succeeded: frozenset(),
    _P.failed: frozenset(),
    _P.canceled: frozenset(),
    _P.expired: frozenset(),
}

_A = AttemptStatus
_OPEN_ATTEMPT = frozenset(
    {_A.pending, _A.requires_action, _A.authorized, _A.succeeded, _A.failed, _A.canceled, _A.unknown}
)
ATTEMPT_TRANSITIONS: dict[AttemptStatus, frozenset[AttemptStatus]] = {
    _A.created: _OPEN_ATTEMPT,
    _A.pending: _OPEN_ATTEMPT - {_A.pending},
    _A.requires_action: _OPEN_ATTEMPT - {_A.requires_action},
    # A capture or void whose answer was lost leaves the attempt unknown until sync resolves it.
    _A.authorized: frozenset({_A.succeeded, _A.canceled, _A.unknown}),
    _A.unknown: frozenset({_A.pending, _A.requires_action, _A.authorized, _A.succeeded, _A.failed, _A.canceled}),
    _A.succeeded: frozenset(),
    _A.failed: frozenset(),
    _A.canceled: frozenset(),
}


class IllegalTransition(ValueError):
    """A status change the lifecycle does not allow (a bug or a provider contradicting itself)."""

    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"{kind} cannot go from {current} to {target}")
        self.kind = kind
        self.current = current
        self.target = target


def advance_payment(current: PaymentStatus, target: PaymentStatus) -> bool:
    """Check a payment status change. Returns False for a no-op (same status), True for a change.

    Raises IllegalTransition for a move the lifecycle forbids.
    """
    if current is target:
        return False
    if target not in PAYMENT_TRANSITIONS[current]:
        raise IllegalTransition("payment", current, target)
    return True


def advance_attempt(current: AttemptStatus, target: AttemptStatus) -> bool:
    """Check an attempt status change. Returns False for a no-op, True for a change.

    Raises IllegalTransition for a move the lifecycle forbids.
    """
    if current is target:
        return False
    if target not in ATTEMPT_TRANSITIONS[current]:
        raise IllegalTransition("attempt", current, target)
    return True


_ATTEMPT_RANK = {
    _A.created: 0,
    _A.pending: 1,
    _A.requires_action: 1,
    _A.unknown: 1,
    _A.authorized: 2,
    _A.succeeded: 3,
    _A.failed: 3,
    _A.canceled: 3,
}


def is_stale(current: AttemptStatus, reported: AttemptStatus) -> bool:
    """True when ``reported`` is behind ``current`` (an out-of-order or delayed notification).

    Such a report is ignored quietly; a report that contradicts a final status with another final
    one is not stale but an :class:`IllegalTransition`.
    """
    return _ATTEMPT_RANK[reported] < _ATTEMPT_RANK[current]


def payment_status_for(attempt: AttemptStatus) -> PaymentStatus | None:
    """The payment status an attempt's status implies; None while the outcome is open.

    A failed attempt does not by itself fail the payment: the router may fail over. The caller
    decides (``failed`` when no provider is left).
    """
    return {
        _A.requires_action: _P.requires_action,
        _A.authorized: _P.authorized,
        _A.succeeded: _P.succeeded,
        _A.canceled: _P.canceled,
    }.get(attempt)
