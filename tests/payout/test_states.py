"""Pure rules of payouts: the state machine, the retry policy, schedule periods, destinations."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from payment_service.kit.money import Money
from payment_service.models.payout import PayoutSchedule
from payment_service.payout.rules import SchedulePeriods, due_period
from payment_service.payout.service import format_rub
from payment_service.payout.states import (
    ATTEMPT_TRANSITIONS,
    PAYOUT_TRANSITIONS,
    TERMINAL_PAYOUT,
    IllegalTransition,
    PayoutAttemptStatus,
    PayoutStatus,
    advance_attempt,
    advance_payout,
    is_stale,
    is_transient,
    retry_delay,
)
from payment_service.providers.ports import PayoutDestination, PayoutMethod, account_matches_bic

P, A = PayoutStatus, PayoutAttemptStatus


class TestPayoutTransitions:
    @pytest.mark.parametrize("current", list(P))
    @pytest.mark.parametrize("target", list(P))
    def test_every_pair_is_allowed_a_no_op_or_refused(self, current: PayoutStatus, target: PayoutStatus) -> None:
        if current is target:
            assert advance_payout(current, target) is False
        elif target in PAYOUT_TRANSITIONS[current]:
            assert advance_payout(current, target) is True
        else:
            with pytest.raises(IllegalTransition):
                advance_payout(current, target)

    def test_finished_payouts_never_change(self) -> None:
        assert all(PAYOUT_TRANSITIONS[s] == frozenset() for s in TERMINAL_PAYOUT)

    def test_only_a_payout_no_provider_has_can_be_canceled(self) -> None:
        assert [s for s in P if P.canceled in PAYOUT_TRANSITIONS[s]] == [P.pending]

    def test_a_retry_goes_back_to_pending_only_from_processing(self) -> None:
        assert [s for s in P if P.pending in PAYOUT_TRANSITIONS[s]] == [P.processing]


class TestAttemptTransitions:
    @pytest.mark.parametrize("current", list(A))
    @pytest.mark.parametrize("target", list(A))
    def test_every_pair_is_allowed_a_no_op_or_refused(
        self, current: PayoutAttemptStatus, target: PayoutAttemptStatus
    ) -> None:
        if current is target:
            assert advance_attempt(current, target) is False
        elif target in ATTEMPT_TRANSITIONS[current]:
            assert advance_attempt(current, target) is True
        else:
            with pytest.raises(IllegalTransition):
                advance_attempt(current, target)

    def test_a_final_answer_is_never_contradicted(self) -> None:
        with pytest.raises(IllegalTransition):
            advance_attempt(A.succeeded, A.failed)
        with pytest.raises(IllegalTransition):
            advance_attempt(A.failed, A.succeeded)

    @pytest.mark.parametrize(
        ("current", "reported", "stale"),
        [
            (A.succeeded, A.pending, True),  # the synchronous answer after the webhook
            (A.pending, A.unknown, True),
            (A.unknown, A.pending, False),
            (A.created, A.succeeded, False),
            (A.pending, A.failed, False),
        ],
    )
    def test_reports_behind_what_we_know_are_stale(
        self, current: PayoutAttemptStatus, reported: PayoutAttemptStatus, stale: bool
    ) -> None:
        assert is_stale(current, reported) is stale


class TestRetryPolicy:
    @pytest.mark.parametrize(
        ("made", "expected"),
        [
            (1, timedelta(seconds=60)),
            (2, timedelta(seconds=300)),
            (3, timedelta(seconds=1800)),
            (4, timedelta(seconds=1800)),
            (5, None),
        ],
    )
    def test_backoff_grows_then_gives_up(self, made: int, expected: timedelta | None) -> None:
        assert retry_delay(made, max_attempts=5, backoff=[60, 300, 1800]) == expected

    @pytest.mark.parametrize(
        ("code", "transient"),
        [
            ("issuer_unavailable", True),
            ("insufficient_funds", True),
            ("provider_unavailable", True),
            ("provider_not_reached", True),
            ("recipient_not_found", False),
            ("invalid_destination", False),
            ("provider_rejected", False),
            ("fraud_suspected", False),
        ],
    )
    def test_only_transient_failures_are_retried(self, code: str, transient: bool) -> None:
        assert is_transient(code) is transient


class TestSchedule:
    @pytest.mark.parametrize(
        ("day", "weekly", "weekday", "monthly"),
        [
            (date(2026, 11, 30), "2026-W49", 1, "2026-11"),
            (date(2026, 11, 29), "2026-W48", 7, "2026-11"),
            (date(2027, 1, 1), "2026-W53", 5, "2027-01"),
        ],
    )
    def test_periods_of_a_day(self, day: date, weekly: str, weekday: int, monthly: str) -> None:
        p = SchedulePeriods.of(day)

        assert (p.weekly, p.weekday, p.monthly) == (weekly, weekday, monthly)

    @pytest.mark.parametrize(
        ("schedule", "schedule_day", "day", "due"),
        [
            (PayoutSchedule.weekly, 5, date(2026, 11, 26), None),  # Thursday: Friday has not come
            (PayoutSchedule.weekly, 5, date(2026, 11, 27), "2026-W48"),
            (PayoutSchedule.weekly, 5, date(2026, 11, 29), "2026-W48"),  # Sunday: still that week's payout
            (PayoutSchedule.monthly, 10, date(2026, 11, 9), None),
            (PayoutSchedule.monthly, 10, date(2026, 11, 10), "2026-11"),
            (PayoutSchedule.monthly, 10, date(2026, 11, 30), "2026-11"),
            (PayoutSchedule.manual, None, date(2026, 11, 30), None),
        ],
    )
    def test_a_payee_is_due_from_their_day_to_the_end_of_the_period(
        self, schedule: PayoutSchedule, schedule_day: int | None, day: date, due: str | None
    ) -> None:
        assert due_period(schedule, schedule_day, SchedulePeriods.of(day)) == due


class TestDestinations:
    ACCOUNT = "40817810099910004316"  # valid for BIC 044525225

    def test_the_account_control_digit_is_checked_against_the_bic(self) -> None:
        assert account_matches_bic(self.ACCOUNT, "044525225")
        assert not account_matches_bic("40817810099910004312", "044525225")
        assert not account_matches_bic(self.ACCOUNT, "044525974")

    @pytest.mark.parametrize(
        ("fields", "masked"),
        [
            ({"method": PayoutMethod.bank_card, "card_token": "pt-1", "card_last4": "4444"}, "card *4444"),
            (
                {
                    "method": PayoutMethod.bank_account,
                    "account_number": ACCOUNT,
                    "bic": "044525225",
                    "holder_name": "Иванов И. И.",
                },
                "account *4316 (BIC 044525225)",
            ),
            ({"method": PayoutMethod.yoomoney, "account_number": "4100116075156746"}, "YooMoney *6746"),
            ({"method": PayoutMethod.sbp, "phone": "79001234567", "bank_id": "100000000111"}, "SBP +7 *** ***-45-67"),
        ],
    )
    def test_valid_details_show_only_their_last_digits(self, fields: dict[str, object], masked: str) -> None:
        d = PayoutDestination(**fields)  # type: ignore[arg-type]

        assert d.masked() == masked
        assert PayoutDestination.from_json(d.to_json()) == d
        for secret in ("pt-1", self.ACCOUNT, "4100116075156746", "79001234567", "Иванов"):
            assert secret not in repr(d)

    @pytest.mark.parametrize(
        ("fields", "problem"),
        [
            ({"method": PayoutMethod.bank_card}, "card token"),
            (
                {"method": PayoutMethod.bank_account, "account_number": "123", "bic": "044525225", "holder_name": "X"},
                "20 digits",
            ),
            ({"method": PayoutMethod.bank_account, "account_number": ACCOUNT, "bic": "044525225"}, "holder_name"),
            ({"method": PayoutMethod.yoomoney, "account_number": "41"}, "11-33 digits"),
            ({"method": PayoutMethod.sbp, "phone": "89001234567", "bank_id": "100000000111"}, "phone"),
            ({"method": PayoutMethod.sbp, "phone": "79001234567"}, "bank_id"),
        ],
    )
    def test_incomplete_details_are_refused(self, fields: dict[str, object], problem: str) -> None:
        with pytest.raises(ValueError, match=problem):
            PayoutDestination(**fields)  # type: ignore[arg-type]


def test_amounts_are_written_the_russian_way() -> None:
    assert format_rub(Money(150_000_00, "RUB")) == "150\u00a0000,00\u00a0₽"
    assert format_rub(Money(5, "RUB")) == "0,05\u00a0₽"
