"""Money: an integer number of minor units plus an ISO 4217 currency. No floats, ever.

* ``Money(49900, "RUB")`` is 499.00 RUB. The amount is an ``int`` (``bool`` and ``float`` are a
  ``TypeError``); the currency must be one of :data:`CURRENCIES` (exponent from ISO 4217).
* Arithmetic between amounts of the same currency is exact (``+``, ``-``, unary ``-``, ``abs``,
  comparisons); a different currency is :class:`CurrencyMismatch`. Multiplying by an ``int`` is
  exact; multiplying by a ratio (``Decimal``, ``Fraction``, a decimal string) needs an explicit
  :class:`Rounding` (:meth:`Money.multiply`, :meth:`Money.percent`).
* Splitting never loses a minor unit: :meth:`Money.allocate` (by ratios, largest remainder) and
  :meth:`Money.split` return parts that sum exactly to the original; :meth:`Money.split_fee`
  returns ``(fee, rest)`` with ``fee + rest == self`` (5 % of 1 kopeck is a 0-kopeck fee and a
  1-kopeck rest, not a lost kopeck).
* The API shows amounts as decimal strings: :meth:`Money.parse` / :meth:`Money.to_decimal_string`
  and :meth:`Money.from_api` / :meth:`Money.to_api` (``{"value": "499.00", "currency": "RUB"}``).
  :class:`MoneyValue` is the pydantic model of that shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

CURRENCIES: Final[dict[str, int]] = {
    # The currencies of the platform's regional prices: CIS, Europe, Asia, Americas.
    "RUB": 2,
    "KZT": 2,
    "BYN": 2,
    "UAH": 2,
    "UZS": 2,
    "KGS": 2,
    "TJS": 2,
    "TMT": 2,
    "AMD": 2,
    "AZN": 2,
    "GEL": 2,
    "MDL": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "PLN": 2,
    "CZK": 2,
    "TRY": 2,
    "CNY": 2,
    "INR": 2,
    "BRL": 2,
    "MXN": 2,
    "CAD": 2,
    "AUD": 2,
    "AED": 2,
    "SAR": 2,
    "ILS": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "HUF": 2,
    "RSD": 2,
    "MNT": 2,
    "VND": 0,
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "ISK": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}
"""ISO 4217 code → exponent (number of minor-unit digits)."""


class UnknownCurrency(ValueError):
    """The code is not an ISO 4217 currency this service handles."""


class CurrencyMismatch(ValueError):
    """Arithmetic or comparison between amounts of different currencies."""


class InvalidAmount(ValueError):
    """A decimal string that is not an amount in the currency (bad syntax, too many decimals)."""


class Rounding(StrEnum):
    """How a fractional number of minor units becomes an integer."""

    half_even = "half_even"
    """To nearest; ties to the even neighbour (banker's rounding)."""
    half_up = "half_up"
    """To nearest; ties away from zero (the usual commercial rounding)."""
    half_down = "half_down"
    """To nearest; ties toward zero."""
    up = "up"
    """Away from zero."""
    down = "down"
    """Toward zero (truncate)."""
    ceiling = "ceiling"
    """Toward +infinity."""
    floor = "floor"
    """Toward -infinity."""


Ratio = int | Fraction | Decimal | str
"""A factor without floats: an int, a Fraction, a Decimal, or a decimal string like ``"0.05"``."""


def exponent(currency: str) -> int:
    """Minor-unit digits of ``currency``; raises :class:`UnknownCurrency`."""
    try:
        return CURRENCIES[currency]
    except (KeyError, TypeError):
        raise UnknownCurrency(f"unknown currency {currency!r}") from None


def to_fraction(value: Ratio) -> Fraction:
    """An exact rational from an int, Fraction, finite Decimal or decimal string; floats are a TypeError."""
    if isinstance(value, bool | float):
        raise TypeError("floats (and bools) are not allowed in money arithmetic")
    if isinstance(value, int | Fraction):
        return Fraction(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidAmount(f"not a finite number: {value}")
        return Fraction(value)
    if isinstance(value, str):
        if not _DECIMAL_RE.fullmatch(value.strip()):
            raise InvalidAmount(f"not a decimal number: {value!r}")
        return Fraction(Decimal(value.strip()))
    raise TypeError(f"unsupported ratio type {type(value).__name__}")


def round_fraction(value: Fraction, rounding: Rounding) -> int:
    """Round an exact rational to an integer with the given mode."""
    if not isinstance(rounding, Rounding):
        raise TypeError("rounding must be a Rounding member")
    floor = value.numerator // value.denominator
    remainder = value - floor  # in [0, 1)
    if remainder == 0:
        return floor
    ceil = floor + 1
    if rounding is Rounding.floor:
        return floor
    if rounding is Rounding.ceiling:
        return ceil
    if rounding is Rounding.down:
        return floor if value > 0 else ceil
    if rounding is Rounding.up:
        return ceil if value > 0 else floor
    half = Fraction(1, 2)
    if remainder < half:
        return floor
    if remainder > half:
        return ceil
    if rounding is Rounding.half_even:
        return floor if floor % 2 == 0 else ceil
    if rounding is Rounding.half_up:
        return ceil if value > 0 else floor
    return floor if value > 0 else ceil  # half_down


_DECIMAL_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_AMOUNT_RE = re.compile(r"(-)?(\d{1,30})(?:\.(\d+))?")


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``amount_minor`` minor units of ``currency`` (ISO 4217)."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount_minor) is not int:
            raise TypeError(
                f"amount_minor must be an int number of minor units, not {type(self.amount_minor).__name__}"
            )
        exponent(self.currency)

    # ---- construction ---------------------------------------------------------------------------

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, value: str, currency: str, *, rounding: Rounding | None = None) -> Money:
        """Parse a decimal string in major units (``"499.00"``, ``"499"``, ``"-0.5"``).

        More decimals than the currency has is :class:`InvalidAmount`, unless ``rounding`` says
        how to round them. Exponents, separators and whitespace inside are not accepted.
        """
        if not isinstance(value, str):
            raise TypeError(f"parse takes a decimal string, not {type(value).__name__}")
        exp = exponent(currency)
        match = _AMOUNT_RE.fullmatch(value.strip())
        if match is None:
            raise InvalidAmount(f"not an amount: {value!r}")
        sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
        if len(frac) > exp:
            if rounding is None:
                raise InvalidAmount(f"{currency} has {exp} decimal places, got {value!r}")
            exact = Fraction(int(whole + frac), 10 ** len(frac)) * 10**exp
            minor = round_fraction(-exact if sign else exact, rounding)
            return cls(minor, currency)
        minor = int(whole + frac.ljust(exp, "0")) if exp else int(whole)
        return cls(-minor if sign else minor, currency)

    @classmethod
    def from_decimal(cls, value: Decimal, currency: str, *, rounding: Rounding | None = None) -> Money:
        """From a ``Decimal`` in major units; extra decimals need ``rounding``."""
        if not isinstance(value, Decimal):
            raise TypeError(f"from_decimal takes a Decimal, not {type(value).__name__}")
        if not value.is_finite():
            raise InvalidAmount(f"not a finite amount: {value}")
        exact = Fraction(value) * 10 ** exponent(currency)
        if exact.denominator != 1:
            if rounding is None:
                raise InvalidAmount(f"{value} has more decimals than {currency} allows")
            return cls(round_fraction(exact, rounding), currency)
        return cls(exact.numerator, currency)

    @classmethod
    def from_api(cls, data: Any) -> Money:
        """From the API shape ``{"value": "499.00", "currency": "RUB"}``."""
        if isinstance(data, MoneyValue):
            return data.to_money()
        if not isinstance(data, dict) or set(data) != {"value", "currency"}:
            raise InvalidAmount('expected {"value": "<decimal>", "currency": "<ISO 4217>"}')
        return cls.parse(data["value"], data["currency"])

    # ---- rendering ------------------------------------------------------------------------------

    @property
    def exponent(self) -> int:
        return CURRENCIES[self.currency]

    def to_decimal(self) -> Decimal:
        """The amount in major units as an exact ``Decimal`` with the currency's decimals."""
        return Decimal(self.amount_minor).scaleb(-self.exponent)

    def to_decimal_string(self) -> str:
        """``"499.00"`` for 49900 RUB, ``"-0.05"`` for -5, ``"500"`` for 500 JPY."""
        exp = self.exponent
        sign = "-" if self.amount_minor < 0 else ""
        digits = str(abs(self.amount_minor))
        if exp == 0:
            return sign + digits
        digits = digits.rjust(exp + 1, "0")
        return f"{sign}{digits[:-exp]}.{digits[-exp:]}"

    def to_api(self) -> dict[str, str]:
        return {"value": self.to_decimal_string(), "currency": self.currency}

    def __str__(self) -> str:
        return f"{self.to_decimal_string()} {self.currency}"

    # ---- arithmetic -----------------------------------------------------------------------------

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount_minor + self._same(other).amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount_minor - self._same(other).amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(abs(self.amount_minor), self.currency)

    def __mul__(self, factor: int) -> Money:
        if type(factor) is not int:
            raise TypeError("Money * int only; use multiply(ratio, rounding=...) for fractions, never floats")
        return Money(self.amount_minor * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount_minor < self._same(other).amount_minor

    def __le__(self, other: Money) -> bool:
        return self.amount_minor <= self._same(other).amount_minor

    def __gt__(self, other: Money) -> bool:
        return self.amount_minor > self._same(other).amount_minor

    def __ge__(self, other: Money) -> bool:
        return self.amount_minor >= self._same(other).amount_minor

    def __bool__(self) -> bool:
        return self.amount_minor != 0

    @property
    def is_zero(self) -> bool:
        return self.amount_minor == 0

    @property
    def is_positive(self) -> bool:
        return self.amount_minor > 0

    @property
    def is_negative(self) -> bool:
        return self.amount_minor < 0

    def multiply(self, ratio: Ratio, *, rounding: Rounding) -> Money:
        """``self × ratio`` rounded to a whole minor unit with ``rounding`` (explicit, always)."""
        return Money(round_fraction(self.amount_minor * to_fraction(ratio), rounding), self.currency)

    def percent(self, rate: Ratio, *, rounding: Rounding) -> Money:
        """``rate`` percent of the amount (``percent("5", ...)`` is 5 %)."""
        return self.multiply(to_fraction(rate) / 100, rounding=rounding)

    def split_fee(self, rate: Ratio, *, rounding: Rounding) -> tuple[Money, Money]:
        """``(fee, rest)`` where fee is ``rate`` (a fraction, e.g. ``"0.05"``) of the amount.

        ``fee + rest == self`` always: the rounding difference stays in ``rest``.
        """
        fee = self.multiply(rate, rounding=rounding)
        return fee, self - fee

    def allocate(self, ratios: Sequence[Ratio]) -> list[Money]:
        """Split in proportion to ``ratios`` without losing a minor unit (largest remainder).

        The parts sum exactly to ``self``; each part differs from its exact share by less than
        one minor unit; remainders go to the parts with the largest fractional share, ties to
        the earlier part. Ratios must be non-negative with a positive sum. Works for negative
        amounts symmetrically (``a.allocate(r) == [-p for p in (-a).allocate(r)]``).
        """
        if not ratios:
            raise ValueError("allocate needs at least one ratio")
        weights = [to_fraction(r) for r in ratios]
        if any(w < 0 for w in weights):
            raise ValueError("ratios must be non-negative")
        total = sum(weights, Fraction(0))
        if total <= 0:
            raise ValueError("ratios must have a positive sum")
        sign = -1 if self.amount_minor < 0 else 1
        amount = abs(self.amount_minor)
        exact = [amount * w / total for w in weights]
        parts = [e.numerator // e.denominator for e in exact]
        left = amount - sum(parts)
        order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
        for i in order[:left]:
            parts[i] += 1
        return [Money(sign * p, self.currency) for p in parts]

    def split(self, n: int) -> list[Money]:
        """``n`` parts as equal as possible (differing by at most one minor unit), summing to ``self``."""
        if type(n) is not int or n < 1:
            raise ValueError("split needs a positive int number of parts")
        return self.allocate([1] * n)


def total(amounts: Sequence[Money], currency: str) -> Money:
    """Sum of ``amounts`` (all in ``currency``); the zero of ``currency`` when empty."""
    result = Money.zero(currency)
    for m in amounts:
        result = result + m
    return result


class MoneyValue(BaseModel):
    """Money on the wire: ``{"value": "499.00", "currency": "RUB"}``."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"example": {"value": "499.00", "currency": "RUB"}})

    value: str = Field(pattern=r"^-?\d{1,30}(\.\d{1,4})?$", description="Decimal string in major units")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")

    @classmethod
    def of(cls, money: Money) -> MoneyValue:
        return cls(value=money.to_decimal_string(), currency=money.currency)

    def to_money(self) -> Money:
        """Raises :class:`UnknownCurrency` or :class:`InvalidAmount` (too many decimals)."""
        return Money.parse(self.value, self.currency)
