from __future__ import annotations

from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    localcontext,
)
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from payment_service.kit.money import (
    CURRENCIES,
    CurrencyMismatch,
    InvalidAmount,
    Money,
    MoneyValue,
    Rounding,
    UnknownCurrency,
    round_fraction,
    total,
)

currencies = st.sampled_from(sorted(CURRENCIES))
amounts = st.integers(min_value=-(10**15), max_value=10**15)
ratios = st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=12).filter(lambda r: sum(r) > 0)
roundings = st.sampled_from(list(Rounding))

DECIMAL_MODE = {
    Rounding.half_even: ROUND_HALF_EVEN,
    Rounding.half_up: ROUND_HALF_UP,
    Rounding.half_down: ROUND_HALF_DOWN,
    Rounding.up: ROUND_UP,
    Rounding.down: ROUND_DOWN,
    Rounding.ceiling: ROUND_CEILING,
    Rounding.floor: ROUND_FLOOR,
}


class TestConstruction:
    def test_a_float_amount_is_a_type_error(self) -> None:
        with pytest.raises(TypeError):
            Money(4.99, "RUB")  # type: ignore[arg-type]

    def test_a_bool_or_decimal_amount_is_a_type_error(self) -> None:
        with pytest.raises(TypeError):
            Money(True, "RUB")
        with pytest.raises(TypeError):
            Money(Decimal(1), "RUB")  # type: ignore[arg-type]

    def test_an_unknown_currency_is_rejected(self) -> None:
        with pytest.raises(UnknownCurrency):
            Money(1, "XXX")
        with pytest.raises(UnknownCurrency):
            Money(1, "rub")

    def test_exponents_follow_iso_4217(self) -> None:
        assert Money(1, "RUB").exponent == 2
        assert Money(1, "KZT").exponent == 2
        assert Money(1, "JPY").exponent == 0
        assert Money(1, "KWD").exponent == 3


class TestArithmetic:
    def test_different_currencies_do_not_mix(self) -> None:
        with pytest.raises(CurrencyMismatch):
            Money(1, "RUB") + Money(1, "KZT")
        with pytest.raises(CurrencyMismatch):
            _ = Money(1, "RUB") < Money(1, "USD")

    def test_multiplying_by_a_float_is_a_type_error(self) -> None:
        with pytest.raises(TypeError):
            Money(100, "RUB") * 1.5  # type: ignore[operator]
        with pytest.raises(TypeError):
            Money(100, "RUB").multiply(0.05, rounding=Rounding.half_up)  # type: ignore[arg-type]

    def test_multiplying_by_a_ratio_needs_a_rounding_and_is_exact(self) -> None:
        assert Money(1, "RUB").percent("5", rounding=Rounding.half_up) == Money(0, "RUB")
        assert Money(1, "RUB").percent("5", rounding=Rounding.up) == Money(1, "RUB")
        assert Money(10, "RUB").multiply(Fraction(1, 4), rounding=Rounding.half_even) == Money(2, "RUB")
        assert Money(10, "RUB").multiply("0.25", rounding=Rounding.half_up) == Money(3, "RUB")

    @given(currencies, amounts, amounts, amounts)
    def test_addition_is_exact_associative_and_commutative(self, cur: str, a: int, b: int, c: int) -> None:
        x, y, z = Money(a, cur), Money(b, cur), Money(c, cur)

        assert (x + y) + z == x + (y + z)
        assert x + y == y + x
        assert (x + y - y) == x
        assert (x + y).amount_minor == a + b
        assert -x + x == Money.zero(cur)

    @given(currencies, amounts, st.integers(-1000, 1000))
    def test_int_multiplication_is_repeated_addition(self, cur: str, a: int, k: int) -> None:
        assert Money(a, cur) * k == Money(a * k, cur) == k * Money(a, cur)

    @given(st.integers(-(10**12), 10**12), st.integers(1, 10**6), roundings)
    def test_rounding_matches_decimal_quantize(self, num: int, den: int, mode: Rounding) -> None:
        # 100 digits decide every case: a non-terminating quotient is at least 1/(2*den) from a tie.
        with localcontext(prec=100):
            expected = (Decimal(num) / Decimal(den)).quantize(Decimal(1), rounding=DECIMAL_MODE[mode])

        assert round_fraction(Fraction(num, den), mode) == int(expected)

    @given(st.integers(-(10**12), 10**12), st.integers(1, 10**6), roundings)
    def test_rounding_is_within_one_minor_unit(self, num: int, den: int, mode: Rounding) -> None:
        exact = Fraction(num, den)
        assert abs(round_fraction(exact, mode) - exact) < 1


class TestSplitting:
    def test_five_percent_fee_of_one_kopeck_loses_nothing(self) -> None:
        fee, rest = Money(1, "RUB").split_fee("0.05", rounding=Rounding.half_up)

        assert fee == Money(0, "RUB")
        assert rest == Money(1, "RUB")

    def test_three_way_split_of_one_hundred_kopecks(self) -> None:
        assert Money(100, "RUB").split(3) == [Money(34, "RUB"), Money(33, "RUB"), Money(33, "RUB")]

    def test_allocation_by_revenue_share(self) -> None:
        developer, platform = Money(99999, "RUB").allocate([70, 30])

        assert developer == Money(69999, "RUB")
        assert platform == Money(30000, "RUB")

    def test_allocate_rejects_bad_ratios(self) -> None:
        with pytest.raises(ValueError, match="positive sum"):
            Money(10, "RUB").allocate([0, 0])
        with pytest.raises(ValueError, match="non-negative"):
            Money(10, "RUB").allocate([1, -1])
        with pytest.raises(TypeError):
            Money(10, "RUB").allocate([0.5, 0.5])  # type: ignore[list-item]

    @given(currencies, amounts, ratios)
    def test_allocation_sums_exactly_and_each_part_is_within_one_unit(
        self, cur: str, a: int, weights: list[int]
    ) -> None:
        money = Money(a, cur)

        parts = money.allocate(weights)

        assert total(parts, cur) == money
        share_total = sum(weights)
        for part, w in zip(parts, weights, strict=True):
            assert abs(Fraction(part.amount_minor) - Fraction(a * w, share_total)) < 1
            if w == 0:
                assert part.is_zero

    @given(currencies, amounts, ratios)
    def test_allocation_is_symmetric_in_sign(self, cur: str, a: int, weights: list[int]) -> None:
        assert Money(a, cur).allocate(weights) == [-p for p in Money(-a, cur).allocate(weights)]

    @given(currencies, amounts, st.integers(1, 50))
    def test_split_parts_differ_by_at_most_one(self, cur: str, a: int, n: int) -> None:
        parts = Money(a, cur).split(n)

        assert len(parts) == n
        assert total(parts, cur) == Money(a, cur)
        assert max(p.amount_minor for p in parts) - min(p.amount_minor for p in parts) <= 1

    @given(currencies, amounts, st.integers(0, 10_000), roundings)
    def test_fee_plus_rest_is_the_whole(self, cur: str, a: int, basis_points: int, mode: Rounding) -> None:
        money = Money(a, cur)

        fee, rest = money.split_fee(Fraction(basis_points, 10_000), rounding=mode)

        assert fee + rest == money
        assert abs(Fraction(fee.amount_minor) - Fraction(a * basis_points, 10_000)) < 1


class TestDecimalStrings:
    def test_formats_as_the_api_shows_it(self) -> None:
        assert Money(49900, "RUB").to_api() == {"value": "499.00", "currency": "RUB"}
        assert Money(-5, "RUB").to_decimal_string() == "-0.05"
        assert Money(500, "JPY").to_decimal_string() == "500"
        assert Money(1, "KWD").to_decimal_string() == "0.001"
        assert str(Money(12345, "KZT")) == "123.45 KZT"

    def test_parses_decimal_strings(self) -> None:
        assert Money.parse("499.00", "RUB") == Money(49900, "RUB")
        assert Money.parse("499", "RUB") == Money(49900, "RUB")
        assert Money.parse("0.5", "RUB") == Money(50, "RUB")
        assert Money.parse("-1.01", "RUB") == Money(-101, "RUB")
        assert Money.from_api({"value": "10.00", "currency": "USD"}) == Money(1000, "USD")

    @pytest.mark.parametrize("raw", ["", "1e3", "1,00", "abc", "1.", ". 5", "++1", "NaN", "Infinity", "1 000"])
    def test_rejects_what_is_not_a_plain_decimal(self, raw: str) -> None:
        with pytest.raises(InvalidAmount):
            Money.parse(raw, "RUB")

    def test_too_many_decimals_needs_a_rounding(self) -> None:
        with pytest.raises(InvalidAmount):
            Money.parse("1.005", "RUB")
        with pytest.raises(InvalidAmount):
            Money.parse("1.5", "JPY")

        assert Money.parse("1.005", "RUB", rounding=Rounding.half_even) == Money(100, "RUB")
        assert Money.parse("1.005", "RUB", rounding=Rounding.half_up) == Money(101, "RUB")
        assert Money.parse("-1.005", "RUB", rounding=Rounding.half_up) == Money(-101, "RUB")

    def test_from_decimal(self) -> None:
        assert Money.from_decimal(Decimal("12.34"), "RUB") == Money(1234, "RUB")
        with pytest.raises(InvalidAmount):
            Money.from_decimal(Decimal("12.345"), "RUB")
        assert Money.from_decimal(Decimal("12.345"), "RUB", rounding=Rounding.floor) == Money(1234, "RUB")
        with pytest.raises(TypeError):
            Money.from_decimal(12.34, "RUB")  # type: ignore[arg-type]

    @given(currencies, amounts)
    def test_format_then_parse_round_trips(self, cur: str, a: int) -> None:
        money = Money(a, cur)

        assert Money.parse(money.to_decimal_string(), cur) == money
        assert Money.from_api(money.to_api()) == money
        assert Money.from_decimal(money.to_decimal(), cur) == money

    def test_money_value_model(self) -> None:
        value = MoneyValue.of(Money(49900, "RUB"))

        assert value.model_dump() == {"value": "499.00", "currency": "RUB"}
        assert MoneyValue(value="1.50", currency="RUB").to_money() == Money(150, "RUB")
        with pytest.raises(ValidationError):
            MoneyValue(value="1.5e3", currency="RUB")
        with pytest.raises(InvalidAmount):
            MoneyValue(value="1.505", currency="RUB").to_money()
