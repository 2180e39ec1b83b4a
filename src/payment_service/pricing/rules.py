"""Pure pricing tables: which currency a region pays in, and which VAT rate applies on a date.

No I/O. Changing a table is a code change reviewed like any other (tax rates are law, not
configuration); add a row with its start date, never edit a past one — orders priced before the
change keep the rate they were settled with (stored on the order).

* :data:`REGION_CURRENCIES` — ISO 3166-1 alpha-2 region → ISO 4217 currency of its store prices.
* :data:`VAT_RATES` — rows ``(region, valid_from, percent)``; the row with the latest
  ``valid_from`` on or before the local date of the sale applies. Russia: 20 % until 2025-12-31,
  22 % from 2026-01-01. Regions without rows are not taxable supplies of the platform here
  (0 %): VAT on them is not collected by this service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

REGION_CURRENCIES: Final[dict[str, str]] = {
    "RU": "RUB",
    "BY": "BYN",
    "KZ": "KZT",
    "AM": "AMD",
    "KG": "KGS",
    "UZ": "UZS",
    "TJ": "TJS",
    "TM": "TMT",
    "AZ": "AZN",
    "GE": "GEL",
    "MD": "MDL",
}
"""Store regions the platform sells in and the currency each one's prices are in."""


@dataclass(frozen=True, slots=True)
class VatRate:
    """``percent`` VAT on sales in ``region`` from ``valid_from`` (local date) until the next row."""

    region: str
    valid_from: date
    percent: Decimal
    timezone: str = "Europe/Moscow"
    """Where the calendar day of a sale is decided (the tax point is the day the money arrives)."""


VAT_RATES: Final[tuple[VatRate, ...]] = (
    VatRate("RU", date(2019, 1, 1), Decimal("20")),
    VatRate("RU", date(2026, 1, 1), Decimal("22")),
)


class UnknownRegion(ValueError):
    """The region is not one the store sells in."""


def currency_of(region: str) -> str:
    """The currency of ``region``'s prices. Raises UnknownRegion."""
    try:
        return REGION_CURRENCIES[region]
    except KeyError:
        raise UnknownRegion(f"the store does not sell in region {region!r}") from None


def vat_rate(region: str, at: datetime, *, table: tuple[VatRate, ...] = VAT_RATES) -> Decimal:
    """The VAT percent for a sale in ``region`` at ``at`` (timezone-aware); 0 without a row.

    The local date of ``at`` in the row's timezone selects the row, so a sale at 23:30 UTC on
    31 Dec 2025 (02:30 on 1 Jan in Moscow) is taxed at the 2026 rate.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    best: VatRate | None = None
    for row in table:
        if row.region != region:
            continue
        if row.valid_from <= at.astimezone(ZoneInfo(row.timezone)).date() and (
            best is None or row.valid_from > best.valid_from
        ):
            best = row
    return best.percent if best is not None else Decimal(0)
