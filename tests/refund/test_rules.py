"""Pure refund rules: auto-approval verdicts, the split over sources, and status transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payment_service.kit.money import Money
from payment_service.refund.rules import (
    Finding,
    OverLimit,
    RefundFacts,
    RefundPolicy,
    Verdict,
    allocate,
    decide,
)
from payment_service.refund.states import IllegalRefundTransition, RefundDestination, RefundStatus, advance
from payment_service.refund.texts import format_ru, notification

BOUGHT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
POLICY = RefundPolicy()


def facts(
    *, days: float = 1, minutes: int | None = 30, games: bool = True, recent: int = 0, bought: datetime = BOUGHT
) -> RefundFacts:
    return RefundFacts(
        purchased_at=bought,
        requested_at=bought + timedelta(days=days),
        has_games=games,
        playtime=None if minutes is None else timedelta(minutes=minutes),
        recent_refunds=recent,
    )


class TestDecide:
    def test_a_fresh_purchase_barely_played_is_approved(self) -> None:
        decision = decide(facts(days=13.9, minutes=119), POLICY)

        assert decision.verdict is Verdict.approve
        assert decision.findings == ()

    def test_a_request_after_fourteen_days_goes_to_review(self) -> None:
        decision = decide(facts(days=14.01), POLICY)

        assert decision.verdict is Verdict.review
        assert decision.findings == (Finding.outside_window,)

    def test_two_hours_of_playtime_goes_to_review_by_default(self) -> None:
        decision = decide(facts(minutes=120), POLICY)

        assert decision.verdict is Verdict.review
        assert decision.findings == (Finding.playtime_exceeded,)

    def test_two_hours_of_playtime_is_rejected_when_the_policy_says_reject(self) -> None:
        decision = decide(facts(minutes=120), RefundPolicy(over_playtime=OverLimit.reject))

        assert decision.verdict is Verdict.reject
        assert decision.rejected_for is Finding.playtime_exceeded

    def test_unknown_playtime_is_never_guessed(self) -> None:
        decision = decide(facts(minutes=None), POLICY)

        assert decision.verdict is Verdict.review
        assert decision.findings == (Finding.playtime_unknown,)

    def test_playtime_does_not_matter_without_games(self) -> None:
        assert decide(facts(minutes=None, games=False), POLICY).verdict is Verdict.approve
        assert decide(facts(minutes=600, games=False), POLICY).verdict is Verdict.approve

    def test_many_refunds_of_other_purchases_go_to_review(self) -> None:
        assert decide(facts(recent=3), POLICY).verdict is Verdict.approve

        decision = decide(facts(recent=4), POLICY)

        assert decision.verdict is Verdict.review
        assert decision.findings == (Finding.frequent_refunds,)

    def test_past_the_hard_window_the_request_is_rejected(self) -> None:
        decision = decide(facts(days=91, minutes=0), POLICY)

        assert decision.verdict is Verdict.reject
        assert decision.rejected_for is Finding.window_expired

    def test_every_finding_is_listed(self) -> None:
        decision = decide(facts(days=20, minutes=None, recent=9), POLICY)

        assert decision.findings == (Finding.outside_window, Finding.playtime_unknown, Finding.frequent_refunds)


def rub(kopecks: int) -> Money:
    return Money(kopecks, "RUB")


class TestAllocate:
    def test_one_source_takes_the_whole_refund(self) -> None:
        assert allocate(rub(100), [rub(499)]) == [rub(100)]

    def test_parts_follow_what_each_source_still_holds(self) -> None:
        assert allocate(rub(100), [rub(300), rub(100), rub(0)]) == [rub(75), rub(25), rub(0)]

    def test_the_last_refund_takes_exactly_what_is_left(self) -> None:
        assert allocate(rub(401), [rub(1), rub(400)]) == [rub(1), rub(400)]

    def test_more_than_the_sources_hold_is_refused(self) -> None:
        with pytest.raises(ValueError, match="exceeds"):
            allocate(rub(501), [rub(500)])

    @given(
        shares=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=6),
        data=st.data(),
    )
    def test_partial_refunds_never_take_more_than_a_source_holds(self, shares: list[int], data: st.DataObject) -> None:
        remaining = [rub(s) for s in shares]
        for step in range(6):  # up to five partial refunds, then the rest
            left = sum(m.amount_minor for m in remaining)
            if left == 0:
                break
            amount = left if step == 5 else data.draw(st.integers(min_value=1, max_value=left))

            parts = allocate(rub(amount), remaining)

            assert sum(p.amount_minor for p in parts) == amount
            assert all(0 <= p.amount_minor <= r.amount_minor for p, r in zip(parts, remaining, strict=True))
            remaining = [r - p for r, p in zip(remaining, parts, strict=True)]
        assert all(r.is_zero for r in remaining)


class TestTransitions:
    @pytest.mark.parametrize(
        ("current", "target"),
        [
            (RefundStatus.pending_review, RefundStatus.processing),
            (RefundStatus.pending_review, RefundStatus.succeeded),
            (RefundStatus.pending_review, RefundStatus.rejected),
            (RefundStatus.processing, RefundStatus.unknown),
            (RefundStatus.unknown, RefundStatus.succeeded),
            (RefundStatus.unknown, RefundStatus.failed),
        ],
    )
    def test_allowed_moves(self, current: RefundStatus, target: RefundStatus) -> None:
        assert advance(current, target) is True

    def test_the_same_status_again_is_a_no_op(self) -> None:
        assert advance(RefundStatus.succeeded, RefundStatus.succeeded) is False

    @pytest.mark.parametrize(
        ("current", "target"),
        [
            (RefundStatus.succeeded, RefundStatus.failed),
            (RefundStatus.failed, RefundStatus.succeeded),
            (RefundStatus.rejected, RefundStatus.processing),
            (RefundStatus.processing, RefundStatus.rejected),
        ],
    )
    def test_a_final_status_is_never_overwritten(self, current: RefundStatus, target: RefundStatus) -> None:
        with pytest.raises(IllegalRefundTransition):
            advance(current, target)


class TestTexts:
    @pytest.mark.parametrize(
        ("kopecks", "currency", "shown"),
        [
            (49_900, "RUB", "499,00\u00a0₽"),
            (149_900, "RUB", "1\u00a0499,00\u00a0₽"),
            (123_456_789, "RUB", "1\u00a0234\u00a0567,89\u00a0₽"),
            (5, "RUB", "0,05\u00a0₽"),
            (1_500, "JPY", "1\u00a0500\u00a0JPY"),
        ],
    )
    def test_amounts_are_written_the_russian_way(self, kopecks: int, currency: str, shown: str) -> None:
        assert format_ru(Money(kopecks, currency)) == shown

    def test_every_refund_event_has_a_russian_text(self) -> None:
        amount = rub(49_900)
        original, wallet = RefundDestination.original_method, RefundDestination.wallet

        assert notification("refund.succeeded", amount, original, RefundStatus.succeeded).startswith(
            "Возврат 499,00\u00a0₽ оформлен"
        )
        assert notification("refund.succeeded", amount, wallet, RefundStatus.succeeded) == (
            "Возврат 499,00\u00a0₽ зачислен на ваш кошелёк."
        )
        assert notification("refund.failed", amount, original, RefundStatus.failed).startswith("Не удалось")
        assert "отклонён" in notification("refund.rejected", amount, original, RefundStatus.rejected)
        assert "будет рассмотрен" in notification("refund.requested", amount, original, RefundStatus.pending_review)
        assert (
            notification("refund.requested", amount, original, RefundStatus.processing)
            == "Возврат 499,00\u00a0₽ одобрен."
        )
