"""The pure rules: the fee split (property-tested) and the moderation of shown texts."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payment_service.donation.rules import Flag, moderate, prepare_stems, split
from payment_service.kit.money import Money

BANNED = ["бля", "*хуй", "дурак"]


class TestSplit:
    @given(
        amount=st.integers(min_value=1, max_value=10**12),
        percent=st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False),
        min_fee=st.integers(min_value=0, max_value=10**6),
    )
    def test_streamer_plus_fee_is_the_amount_and_the_fee_is_at_least_the_minimum(
        self, amount: int, percent: Decimal, min_fee: int
    ) -> None:
        result = split(Money(amount, "RUB"), percent=percent, min_fee=Money(min_fee, "RUB"))

        assert result.streamer + result.fee == Money(amount, "RUB")
        assert result.fee.amount_minor >= 0
        assert result.streamer.amount_minor >= 0
        if amount >= min_fee:
            assert result.fee.amount_minor >= min_fee
        else:
            assert result.fee.amount_minor == amount  # never more than the amount
        exact = Decimal(amount) * percent / 100  # the percentage part is within one kopeck of this
        low = min(amount, max(min_fee, int(exact.to_integral_value(rounding=ROUND_FLOOR))))
        high = min(amount, max(min_fee, int(exact.to_integral_value(rounding=ROUND_CEILING))))
        assert low <= result.fee.amount_minor <= high

    def test_five_percent_with_the_minimum(self) -> None:
        small = split(Money(10_00, "RUB"), percent=Decimal("5"), min_fee=Money(5_00, "RUB"))
        big = split(Money(1000_01, "RUB"), percent=Decimal("5"), min_fee=Money(5_00, "RUB"))

        assert (small.fee, small.streamer) == (Money(5_00, "RUB"), Money(5_00, "RUB"))
        assert (big.fee, big.streamer) == (Money(50_00, "RUB"), Money(950_01, "RUB"))  # 50.0005 → 50.00

    def test_an_amount_below_the_minimum_fee_is_all_fee(self) -> None:
        result = split(Money(3_00, "RUB"), percent=Decimal("5"), min_fee=Money(5_00, "RUB"))

        assert result.fee == Money(3_00, "RUB")
        assert result.streamer.is_zero

    @pytest.mark.parametrize(("percent", "amount"), [(Decimal("-1"), 100), (Decimal("100.01"), 100), (Decimal(5), 0)])
    def test_rejects_impossible_inputs(self, percent: Decimal, amount: int) -> None:
        with pytest.raises(ValueError, match="must"):
            split(Money(amount, "RUB"), percent=percent, min_fee=Money(0, "RUB"))

    def test_rejects_a_minimum_in_another_currency(self) -> None:
        with pytest.raises(ValueError, match="currency"):
            split(Money(100, "RUB"), percent=Decimal(5), min_fee=Money(0, "USD"))


class TestModerate:
    def test_plain_text_is_kept(self) -> None:
        result = moderate("Спасибо за стрим!", max_length=300, banned_words=BANNED)

        assert result.text == "Спасибо за стрим!"
        assert result.flags == frozenset()

    @pytest.mark.parametrize(
        "text",
        [
            "заходи http://spam.example/promo сюда",
            "заходи https://spam.example сюда",
            "заходи www.spam.example сюда",
            "заходи t.me/spamchannel сюда",
            "заходи spam-shop.ru/x сюда",
            "заходи сайт.рф сюда",
            "заходи discord.gg/abc сюда",
        ],
    )
    def test_links_are_stripped(self, text: str) -> None:
        result = moderate(text, max_length=300)

        assert result.text == "заходи сюда"
        assert Flag.link_removed in result.flags

    def test_sentences_are_not_mistaken_for_domains(self) -> None:
        assert moderate("Ты лучший. Me too. Итого 3.14", max_length=300).text == "Ты лучший. Me too. Итого 3.14"

    def test_banned_stems_mask_the_whole_word(self) -> None:
        result = moderate("Ну вы Дураки, бляха! А корабля нет", max_length=300, banned_words=BANNED)

        assert result.text == "Ну вы ******, *****! А корабля нет"  # 'корабля' contains 'бля' mid-word: kept
        assert Flag.banned_word in result.flags

    def test_stems_marked_anywhere_match_inside_words(self) -> None:
        assert moderate("это нахуй надо", max_length=300, banned_words=BANNED).text == "это ***** надо"

    @pytest.mark.parametrize("text", ["xуй", "х.у.й", "Х-У-Й", "6ля", "дypaк"])
    def test_look_alike_letters_and_separators_do_not_dodge_the_filter(self, text: str) -> None:
        result = moderate(text, max_length=300, banned_words=BANNED)

        assert set(result.text) == {"*"}
        assert Flag.banned_word in result.flags

    def test_control_and_invisible_characters_are_removed_and_spaces_collapsed(self) -> None:
        result = moderate("при\u200bвет\x07   \n\n мир\u202e", max_length=300)

        assert result.text == "привет мир"
        assert Flag.control_chars in result.flags

    def test_long_text_is_cut_with_an_ellipsis(self) -> None:
        result = moderate("а" * 400, max_length=300)

        assert len(result.text) == 300
        assert result.text.endswith("…")
        assert Flag.truncated in result.flags

    def test_nothing_left_is_flagged_empty(self) -> None:
        result = moderate("http://only.a/link", max_length=300)

        assert result.text == ""
        assert {Flag.empty, Flag.link_removed} <= result.flags

    def test_none_is_empty_without_flags(self) -> None:
        assert moderate(None, max_length=10) == moderate("", max_length=10)

    @given(st.text(max_size=500))
    def test_never_raises_and_respects_the_limit(self, text: str) -> None:
        result = moderate(text, max_length=50, banned_words=BANNED)

        assert len(result.text) <= 50
        assert "http://" not in result.text.lower()

    def test_stems_are_folded_and_deduplicated(self) -> None:
        stems = prepare_stems(["Бля", "бля", "*хуй", ""])

        assert [(s.folded, s.anywhere) for s in stems] == [("бля", False), ("хуи", True)]
