"""The payment and attempt lifecycles, checked exhaustively over every pair of statuses."""

from __future__ import annotations

import itertools

import pytest

from payment_service.payment.states import (
    ATTEMPT_TRANSITIONS,
    PAYMENT_TRANSITIONS,
    TERMINAL_ATTEMPT,
    TERMINAL_PAYMENT,
    AttemptStatus,
    IllegalTransition,
    PaymentStatus,
    advance_attempt,
    advance_payment,
    payment_status_for,
)

P = PaymentStatus
A = AttemptStatus

# The allowed moves written out independently of the module, so a change there must be deliberate.
ALLOWED_PAYMENT = {
    (P.pending, P.requires_action), (P.pending, P.authorized), (P.pending, P.succeeded), (P.pending, P.failed),
    (P.pending, P.canceled), (P.pending, P.expired),
    (P.requires_action, P.pending), (P.requires_action, P.authorized), (P.requires_action, P.succeeded),
    (P.requires_action, P.failed), (P.requires_action, P.canceled), (P.requires_action, P.expired),
    (P.authorized, P.succeeded), (P.authorized, P.canceled), (P.authorized, P.expired),
}  # fmt: skip

ALLOWED_ATTEMPT = {
    *((A.created, t) for t in (A.pending, A.requires_action, A.authorized, A.succeeded, A.failed, A.canceled, A.unknown)),
    *((A.pending, t) for t in (A.requires_action, A.authorized, A.succeeded, A.failed, A.canceled, A.unknown)),
    *((A.requires_action, t) for t in (A.pending, A.authorized, A.succeeded, A.failed, A.canceled, A.unknown)),
    (A.authorized, A.succeeded), (A.authorized, A.canceled), (A.authorized, A.unknown),
    *((A.unknown, t) for t in (A.pending, A.requires_action, A.authorized, A.succeeded, A.failed, A.canceled)),
}  # fmt: skip


class TestAdvancePayment:
    @pytest.mark.parametrize(("current", "target"), list(itertools.product(P, P)))
    def test_every_pair(self, current: PaymentStatus, target: PaymentStatus) -> None:
        if current is target:
            assert advance_payment(current, target) is False
        elif (current, target) in ALLOWED_PAYMENT:
            assert advance_payment(current, target) is True
        else:
            with pytest.raises(IllegalTransition):
                advance_payment(current, target)

    def test_terminal_statuses_have_no_way_out(self) -> None:
        assert all(not PAYMENT_TRANSITIONS[s] for s in TERMINAL_PAYMENT)
        assert all(PAYMENT_TRANSITIONS[s] for s in set(P) - TERMINAL_PAYMENT)

    def test_succeeded_can_never_become_failed(self) -> None:
        with pytest.raises(IllegalTransition, match="succeeded to failed"):
            advance_payment(P.succeeded, P.failed)


class TestAdvanceAttempt:
    @pytest.mark.parametrize(("current", "target"), list(itertools.product(A, A)))
    def test_every_pair(self, current: AttemptStatus, target: AttemptStatus) -> None:
        if current is target:
            assert advance_attempt(current, target) is False
        elif (current, target) in ALLOWED_ATTEMPT:
            assert advance_attempt(current, target) is True
        else:
            with pytest.raises(IllegalTransition):
                advance_attempt(current, target)

    def test_unknown_is_never_terminal_and_resolves_to_every_outcome(self) -> None:
        assert A.unknown not in TERMINAL_ATTEMPT
        assert {A.succeeded, A.failed, A.canceled} <= ATTEMPT_TRANSITIONS[A.unknown]

    def test_nothing_goes_back_to_created(self) -> None:
        assert all(A.created not in targets for targets in ATTEMPT_TRANSITIONS.values())


class TestPaymentStatusFor:
    def test_failed_attempt_leaves_the_payment_open_for_failover(self) -> None:
        assert payment_status_for(A.failed) is None
        assert payment_status_for(A.unknown) is None

    def test_outcomes_map(self) -> None:
        assert payment_status_for(A.succeeded) is P.succeeded
        assert payment_status_for(A.authorized) is P.authorized
        assert payment_status_for(A.requires_action) is P.requires_action


class TestIsStale:
    def test_a_pending_report_after_success_is_stale(self) -> None:
        from payment_service.payment.states import is_stale

        assert is_stale(A.succeeded, A.pending)
        assert is_stale(A.authorized, A.requires_action)
        assert not is_stale(A.authorized, A.succeeded)
        assert not is_stale(A.succeeded, A.failed)  # a contradiction, not staleness
