"""Statuses of payouts and payout attempts, the transitions allowed between them, the retry policy. Pure.

A *payout* sends money held on a payee's ledger balance to the payee's instrument; an *attempt* is
one try at one provider (its id is the provider's idempotency key). A payout whose attempt failed
for a transient reason goes back to ``pending`` and gets a new attempt (new key) after a backoff;
a final failure (or too many attempts) fails the payout and returns the money to the balance.

Re-applying the current status is a no-op (duplicate webhooks, sync racing a webhook); any other
move not listed here is an :class:`IllegalTransition`, never a silent overwrite.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum

from payment_service.providers.ports import TRANSIENT_PAYOUT_FAILURES, PayoutFailureCode


class PayoutStatus(StrEnum):
    """Lifecycle of a payout."""

    pending = "pending"
    """Created and the money held; waiting for its (next) provider attempt at ``next_attempt_at``."""
    processing = "processing"
    """The provider has the attempt (accepted and pending), or its answer was lost (sync resolves it)."""
    succeeded = "succeeded"
    """Paid: the hold is posted (payee balance → provider payout clearing)."""
    failed = "failed"
    """Definitely not paid; the hold is voided (the money is back on the balance); ``failure_code`` says why."""
    canceled = "canceled"
    """Canceled before any provider had it (admin); the hold is voided."""


class PayoutAttemptStatus(StrEnum):
    """Lifecycle of one attempt at one provider."""

    created = "created"
    """Recorded; the provider is being called (``submitted_at`` set) or not yet."""
    pending = "pending"
    """The provider accepted it and has not decided."""
    succeeded = "succeeded"
    """The provider paid."""
    failed = "failed"
    """The provider refused, or nothing was created there (definite)."""
    unknown = "unknown"
    """The answer was lost (timeout, 5xx); status sync must resolve it."""


TERMINAL_PAYOUT = frozenset({PayoutStatus.succeeded, PayoutStatus.failed, PayoutStatus.canceled})
OPEN_PAYOUT = frozenset({PayoutStatus.pending, PayoutStatus.processing})
TERMINAL_ATTEMPT = frozenset({PayoutAttemptStatus.succeeded, PayoutAttemptStatus.failed})
OPEN_ATTEMPT = frozenset({PayoutAttemptStatus.created, PayoutAttemptStatus.pending, PayoutAttemptStatus.unknown})

_P = PayoutStatus
PAYOUT_TRANSITIONS: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    _P.pending: frozenset({_P.processing, _P.succeeded, _P.failed, _P.canceled}),
    # back to pending: the attempt failed for a transient reason and a new one is scheduled
    _P.processing: frozenset({_P.pending, _P.succeeded, _P.failed}),
    _P.succeeded: frozenset(),
    _P.failed: frozenset(),
    _P.canceled: frozenset(),
}

_A = PayoutAttemptStatus
ATTEMPT_TRANSITIONS: dict[PayoutAttemptStatus, frozenset[PayoutAttemptStatus]] = {
    _A.created: frozenset({_A.pending, _A.succeeded, _A.failed, _A.unknown}),
    _A.pending: frozenset({_A.succeeded, _A.failed}),
    _A.unknown: frozenset({_A.pending, _A.succeeded, _A.failed}),
    _A.succeeded: frozenset(),
    _A.failed: frozenset(),
}

_RANK = {_A.created: 0, _A.unknown: 1, _A.pending: 2, _A.succeeded: 3, _A.failed: 3}


class IllegalTransition(ValueError):
    """A status change the lifecycle does not allow (a bug or a provider contradicting itself)."""

    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"{kind} cannot go from {current} to {target}")
        self.kind = kind
        self.current = current
        self.target = target


def advance_payout(current: PayoutStatus, target: PayoutStatus) -> bool:
    """False for a no-op (same status), True for an allowed change; IllegalTransition otherwise."""
    if current is target:
        return False
    if target not in PAYOUT_TRANSITIONS[current]:
        raise IllegalTransition("payout", current, target)
    return True


def advance_attempt(current: PayoutAttemptStatus, target: PayoutAttemptStatus) -> bool:
    """False for a no-op (same status), True for an allowed change; IllegalTransition otherwise."""
    if current is target:
        return False
    if target not in ATTEMPT_TRANSITIONS[current]:
        raise IllegalTransition("payout attempt", current, target)
    return True


def is_stale(current: PayoutAttemptStatus, reported: PayoutAttemptStatus) -> bool:
    """True when ``reported`` is behind ``current`` (a delayed answer after a webhook): ignore it."""
    return _RANK[reported] < _RANK[current]


PROVIDER_UNAVAILABLE = "provider_unavailable"
"""Failure code of an attempt that reached no provider (connection refused, 503, breaker open)."""
PROVIDER_REJECTED = "provider_rejected"
"""Failure code of an attempt the provider refused as a request (bad details, unsupported)."""
PROVIDER_NOT_REACHED = "provider_not_reached"
"""The provider never received an attempt whose answer we had lost."""

TRANSIENT = frozenset({str(c) for c in TRANSIENT_PAYOUT_FAILURES} | {PROVIDER_UNAVAILABLE, PROVIDER_NOT_REACHED})
"""Attempt failures after which a new attempt is worth making (after a backoff)."""


def is_transient(failure_code: str) -> bool:
    return failure_code in TRANSIENT


def retry_delay(attempts_made: int, *, max_attempts: int, backoff: Sequence[float]) -> timedelta | None:
    """When to make the next attempt after ``attempts_made`` failed transiently; None: give up.

    The n-th retry waits ``backoff[n-1]`` seconds (the last value repeats).
    """
    if attempts_made >= max_attempts or not backoff:
        return None
    return timedelta(seconds=backoff[min(attempts_made, len(backoff)) - 1])


def failure_is_known(code: str) -> bool:
    """True for a code the API documents (normalized provider reasons and our own)."""
    return code in {str(c) for c in PayoutFailureCode} | {PROVIDER_UNAVAILABLE, PROVIDER_REJECTED, PROVIDER_NOT_REACHED}
