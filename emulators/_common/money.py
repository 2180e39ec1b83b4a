"""Amount conversions used on the wire."""

from __future__ import annotations

import re
from decimal import Decimal

_DECIMAL = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


def parse_decimal_minor(value: object) -> int | None:
    """``"1220.00"`` → 122000; None when not a valid non-negative 2-decimal amount."""
    text = str(value)
    if not _DECIMAL.match(text):
        return None
    return int(Decimal(text) * 100)


def format_minor(amount_minor: int) -> str:
    return f"{amount_minor // 100}.{amount_minor % 100:02d}"
