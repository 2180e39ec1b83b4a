"""VAT rates by date and region currencies (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from payment_service.pricing import rules
from payment_service.pricing.rules import VatRate


class TestVatRate:
    def test_russia_is_twenty_percent_in_2025_and_twenty_two_from_2026(self) -> None:
        assert rules.vat_rate("RU", datetime(2025, 6, 1, 12, tzinfo=UTC)) == Decimal("20")
        assert rules.vat_rate("RU", datetime(2026, 6, 1, 12, tzinfo=UTC)) == Decimal("22")

    def test_the_moscow_calendar_day_decides(self) -> None:
        before_midnight_utc = datetime(2025, 12, 31, 20, 59, tzinfo=UTC)  # 23:59 in Moscow
        after_midnight_moscow = datetime(2025, 12, 31, 21, 0, tzinfo=UTC)  # 00:00 on 1 Jan in Moscow

        assert rules.vat_rate("RU", before_midnight_utc) == Decimal("20")
        assert rules.vat_rate("RU", after_midnight_moscow) == Decimal("22")

    def test_a_region_without_rows_collects_no_vat(self) -> None:
        assert rules.vat_rate("KZ", datetime(2026, 6, 1, tzinfo=UTC)) == Decimal(0)

    def test_the_latest_row_on_or_before_the_date_applies_whatever_the_table_order(self) -> None:
        table = (
            VatRate("XX", date(2030, 1, 1), Decimal("25")),
            VatRate("XX", date(2020, 1, 1), Decimal("10")),
            VatRate("XX", date(2025, 1, 1), Decimal("15")),
        )

        assert rules.vat_rate("XX", datetime(2026, 1, 1, tzinfo=UTC), table=table) == Decimal("15")
        assert rules.vat_rate("XX", datetime(2019, 1, 1, tzinfo=UTC), table=table) == Decimal(0)

    def test_a_naive_time_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            rules.vat_rate("RU", datetime(2026, 1, 1))


class TestCurrencyOf:
    def test_known_regions(self) -> None:
        assert rules.currency_of("RU") == "RUB"
        assert rules.currency_of("KZ") == "KZT"

    def test_unknown_region(self) -> None:
        with pytest.raises(rules.UnknownRegion):
            rules.currency_of("ZZ")
