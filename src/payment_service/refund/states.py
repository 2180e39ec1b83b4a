"""Statuses of refunds and the only transitions allowed between them. Pure.

A refund gives back all or part of a succeeded payment, either to the original payment method
(through the payment's provider, asynchronously) or to the payer's platform wallet (at once).
Re-applying the status a refund already has is a no-op (duplicate webhooks, the status sync
racing the request); any other move not listed here is an :class:`IllegalRefundTransition`.
"""

from __future__ import annotations

from enum import StrEnum


class RefundStatus(StrEnum):
    """Lifecycle of a refund."""

    pending_review = "pending_review"
    """The auto-approval rules did not approve it: waits for an administrator (amount reserved)."""
    processing = "processing"
    """Approved and recorded; the provider call is in flight, was refused for a transient reason
    (retried by the status sync), or the provider is still processing it (amount reserved)."""
    unknown = "unknown"
    """The provider call's answer was lost; the status sync resolves it (amount reserved)."""
    succeeded = "succeeded"
    """The money went back: the provider confirmed, or the wallet was credited."""
    failed = "failed"
    """The provider definitely refused; nothing was refunded and the reservation is released."""
    rejected = "rejected"
    """An administrator rejected the request; nothing was refunded."""


class RefundDestination(StrEnum):
    """Where the money goes back."""

    original_method = "original_method"
    """To the card, SBP account, wallet or phone balance the payment came from (via its provider)."""
    wallet = "wallet"
    """To the payer's platform wallet, at once."""


class RefundDecision(StrEnum):
    """Who approved the refund."""

    auto = "auto"
    """The auto-approval rules (``rules.decide``)."""
    admin = "admin"
    """An administrator: on review, or by creating the refund."""
    service = "service"
    """An internal service acting for the platform (e.g. an order that could not be delivered)."""


RESERVING = frozenset({RefundStatus.pending_review, RefundStatus.processing, RefundStatus.unknown})
"""Statuses whose amount is reserved: it counts against what may still be refunded."""
OPEN = frozenset({RefundStatus.processing, RefundStatus.unknown})
"""Approved refunds whose provider outcome is not known yet (the status sync looks at them)."""
TERMINAL = frozenset({RefundStatus.succeeded, RefundStatus.failed, RefundStatus.rejected})

_R = RefundStatus
TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    _R.pending_review: frozenset({_R.processing, _R.succeeded, _R.rejected}),
    _R.processing: frozenset({_R.unknown, _R.succeeded, _R.failed}),
    _R.unknown: frozenset({_R.processing, _R.succeeded, _R.failed}),
    _R.succeeded: frozenset(),
    _R.failed: frozenset(),
    _R.rejected: frozenset(),
}


class IllegalRefundTransition(ValueError):
    """A status change the lifecycle does not allow (a bug, or a provider contradicting itself)."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"refund cannot go from {current} to {target}")
        self.current = current
        self.target = target


def advance(current: RefundStatus, target: RefundStatus) -> bool:
    """Check a refund status change. False for a no-op (same status), True for a change.

    Raises IllegalRefundTransition for a move the lifecycle forbids.
    """
    if current is target:
        return False
    if target not in TRANSITIONS[current]:
        raise IllegalRefundTransition(current, target)
    return True
