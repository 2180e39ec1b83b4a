"""The revenue split of a sale: VAT, the developer's share and the platform fee. Pure (no I/O).

Prices are tax-inclusive. For a line priced ``P`` with VAT rate ``r`` % and a developer share of
``d`` % (the catalog's revenue-share terms, applied to the price without VAT):

* ``vat = P × r / (100 + r)`` rounded half-up to the minor unit (22 %: ``P × 22/122``);
* ``net = P − vat``; ``developer, fee = net.allocate([d, 100 − d])`` (largest remainder);
* so ``developer + fee + vat == P`` exactly, for every line and therefore for every order: the
  rounding remainder of the VAT stays in ``net`` and the one of the share goes by the largest
  fractional part, never lost.

VAT is computed per line (as on the fiscal receipt), then summed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from payment_service.kit.money import Money, Rounding, total


@dataclass(frozen=True, slots=True)
class LineSplit:
    """Where the money of one line goes: ``vat + developer + fee == price``."""

    price: Money
    vat: Money
    developer: Money
    fee: Money


@dataclass(frozen=True, slots=True)
class OrderSplit:
    """Sums over the lines (each in the order's currency)."""

    lines: tuple[LineSplit, ...]
    price: Money
    vat: Money
    developer: Money
    fee: Money


def vat_included(price: Money, percent: Decimal) -> Money:
    """The VAT contained in a tax-inclusive ``price`` at ``percent`` (half-up to the minor unit)."""
    if percent < 0:
        raise ValueError("a VAT rate cannot be negative")
    if percent == 0:
        return Money.zero(price.currency)
    rate = Fraction(percent) / (100 + Fraction(percent))
    return price.multiply(rate, rounding=Rounding.half_up)


def split_line(price: Money, *, vat_percent: Decimal, developer_percent: Decimal) -> LineSplit:
    """Split one tax-inclusive line price. Raises ValueError for a negative price or a share
    outside 0..100."""
    if price.is_negative:
        raise ValueError("a price cannot be negative")
    if not Decimal(0) <= developer_percent <= Decimal(100):
        raise ValueError("the developer's share must be within 0..100 percent")
    vat = vat_included(price, vat_percent)
    net = price - vat
    if net.is_zero:
        return LineSplit(price=price, vat=vat, developer=net, fee=net)
    developer, fee = net.allocate([developer_percent, Decimal(100) - developer_percent])
    return LineSplit(price=price, vat=vat, developer=developer, fee=fee)


def split_order(lines: Sequence[tuple[Money, Decimal]], *, vat_percent: Decimal, currency: str) -> OrderSplit:
    """Split every ``(price, developer_percent)`` line and add them up."""
    parts = tuple(split_line(p, vat_percent=vat_percent, developer_percent=d) for p, d in lines)
    for part in parts:
        if part.price.currency != currency:
            raise ValueError(f"every line must be in {currency}")
    return OrderSplit(
        lines=parts,
        price=total([p.price for p in parts], currency),
        vat=total([p.vat for p in parts], currency),
        developer=total([p.developer for p in parts], currency),
        fee=total([p.fee for p in parts], currency),
    )
