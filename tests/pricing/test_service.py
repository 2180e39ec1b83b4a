"""The revenue split (pure): developer + fee + VAT == price, to the kopeck."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payment_service.kit.money import Money
from payment_service.pricing import service


def rub(minor: int) -> Money:
    return Money(minor, "RUB")


class TestVatIncluded:
    def test_twenty_two_percent_of_a_tax_inclusive_price(self) -> None:
        # 499.00 × 22/122 = 89.983… → 89.98
        assert service.vat_included(rub(49_900), Decimal("22")) == rub(8_998)

    def test_rounds_half_up(self) -> None:
        # 6.10 × 22/122 = 1.10 exactly; 0.61 × 22/122 = 0.11; 0.03 × 22/122 = 0.0054… → 0.01
        assert service.vat_included(rub(610), Decimal("22")) == rub(110)
        assert service.vat_included(rub(3), Decimal("22")) == rub(1)

    def test_no_rate_no_vat(self) -> None:
        assert service.vat_included(rub(49_900), Decimal(0)) == rub(0)


class TestSplitLine:
    def test_seventy_percent_of_the_price_without_vat_goes_to_the_developer(self) -> None:
        part = service.split_line(rub(49_900), vat_percent=Decimal("22"), developer_percent=Decimal("70"))

        assert part.vat == rub(8_998)
        assert part.developer == rub(28_631)  # 70 % of 409.02 = 286.314
        assert part.fee == rub(12_271)
        assert part.vat + part.developer + part.fee == part.price

    def test_an_odd_share_on_an_odd_price_loses_nothing(self) -> None:
        part = service.split_line(rub(10_001), vat_percent=Decimal("22"), developer_percent=Decimal("70.5"))

        assert part.vat == rub(1_803)  # 100.01 × 22/122 = 18.0346…
        assert part.developer + part.fee == rub(8_198)
        assert part.developer == rub(5_780)  # 70.5 % of 81.98 = 57.7959 → 57.80 by the largest remainder
        assert part.vat + part.developer + part.fee == part.price

    @pytest.mark.parametrize("share", [Decimal("-1"), Decimal("100.01")])
    def test_a_share_outside_0_100_is_refused(self, share: Decimal) -> None:
        with pytest.raises(ValueError, match=r"0\.\.100"):
            service.split_line(rub(100), vat_percent=Decimal("22"), developer_percent=share)

    @given(
        price=st.integers(min_value=0, max_value=10**12),
        vat=st.sampled_from([Decimal(0), Decimal(10), Decimal(20), Decimal(22)]),
        share=st.decimals(min_value=0, max_value=100, places=2),
    )
    def test_the_parts_always_add_up_to_the_price(self, price: int, vat: Decimal, share: Decimal) -> None:
        part = service.split_line(rub(price), vat_percent=vat, developer_percent=share)

        assert part.vat + part.developer + part.fee == rub(price)
        assert min(part.vat.amount_minor, part.developer.amount_minor, part.fee.amount_minor) >= 0
        exact_vat = Decimal(price) * vat / (100 + vat)
        assert abs(Decimal(part.vat.amount_minor) - exact_vat) <= Decimal("0.5")


class TestSplitOrder:
    def test_sums_lines_split_one_by_one(self) -> None:
        split = service.split_order(
            [(rub(49_900), Decimal("70")), (rub(19_900), Decimal("70")), (rub(10_001), Decimal("70.5"))],
            vat_percent=Decimal("22"),
            currency="RUB",
        )

        assert split.price == rub(79_801)
        assert split.vat == sum((p.vat for p in split.lines), rub(0))
        assert split.vat + split.developer + split.fee == split.price

    def test_lines_in_another_currency_are_refused(self) -> None:
        with pytest.raises(ValueError, match="RUB"):
            service.split_order([(Money(100, "KZT"), Decimal("70"))], vat_percent=Decimal(0), currency="RUB")
