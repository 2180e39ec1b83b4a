"""Card scheme by BIN/IIN prefix, for routing and reporting. Pure; no PAN is ever stored.

Ranges (providers-reference §5.1): Mir 2200–2204, Mastercard 51–55 and 2221–2720, Visa 4,
Maestro 50 and 56–69 (except 62 UnionPay), UnionPay 62/81, JCB 3528–3589, Amex 34/37.
``22xx`` is Mir only for 2200–2204; always check the 4-digit prefix.
"""

from __future__ import annotations

from enum import StrEnum


class CardScheme(StrEnum):
    mir = "mir"
    visa = "visa"
    mastercard = "mastercard"
    maestro = "maestro"
    unionpay = "unionpay"
    jcb = "jcb"
    amex = "amex"
    unknown = "unknown"


def scheme_from_bin(bin_or_prefix: str) -> CardScheme:
    """The scheme of a card from its first digits (at least 4 for an exact answer)."""
    digits = "".join(ch for ch in bin_or_prefix if ch.isdigit())
    if len(digits) < 2:
        return CardScheme.unknown
    p2 = int(digits[:2])
    p4 = int(digits[:4]) if len(digits) >= 4 else None
    if p4 is not None and 2200 <= p4 <= 2204:
        return CardScheme.mir
    if p4 is not None and 2221 <= p4 <= 2720:
        return CardScheme.mastercard
    if 51 <= p2 <= 55:
        return CardScheme.mastercard
    if digits[0] == "4":
        return CardScheme.visa
    if p2 in (34, 37):
        return CardScheme.amex
    if p4 is not None and 3528 <= p4 <= 3589:
        return CardScheme.jcb
    if p2 in (62, 81):
        return CardScheme.unionpay
    if p2 == 50 or 56 <= p2 <= 69:
        return CardScheme.maestro
    return CardScheme.unknown


_NAMES = {
    "mir": CardScheme.mir,
    "visa": CardScheme.visa,
    "mastercard": CardScheme.mastercard,
    "maestro": CardScheme.maestro,
    "unionpay": CardScheme.unionpay,
    "jcb": CardScheme.jcb,
    "americanexpress": CardScheme.amex,
    "amex": CardScheme.amex,
}


def scheme_from_name(name: str | None, first6: str | None = None) -> CardScheme:
    """Scheme from a provider's brand name ("MasterCard", "MIR", "Visa"), falling back to the BIN."""
    if name:
        found = _NAMES.get(name.replace(" ", "").replace("_", "").lower())
        if found is not None:
            return found
    return scheme_from_bin(first6) if first6 else CardScheme.unknown


def luhn_valid(number: str) -> bool:
    """Luhn checksum; a typo filter only, never an authorization decision."""
    digits = [int(ch) for ch in number if ch.isdigit()]
    if len(digits) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def split_masked_pan(masked: str) -> tuple[str | None, str | None]:
    """(first6, last4) from a masked PAN such as ``430000******0777`` or ``2200 00** **** 0053``."""
    compact = masked.replace(" ", "")
    first = compact[:6] if len(compact) >= 10 and compact[:6].isdigit() else None
    last = compact[-4:] if len(compact) >= 4 and compact[-4:].isdigit() else None
    return first, last
