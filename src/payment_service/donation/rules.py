"""Pure donation rules: the fee split and the moderation of what is shown on stream.

No I/O, no settings lookups: callers pass the numbers and lists from ``DonationSettings``.

* :func:`split` — ``fee = max(min_fee, percent of the amount)`` but never more than the amount;
  the percentage part is a :meth:`Money.allocate` share (largest remainder), so
  ``fee + streamer == amount`` to the kopeck.
* :func:`moderate` — what the overlay may show: control and invisible characters removed, links
  stripped, banned word stems masked (also when spelled with look-alike Latin letters, digits or
  separators inside the word), whitespace collapsed, cut to the length limit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from payment_service.kit.money import Money

# ---- fee split ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeeSplit:
    """How a donation divides: ``fee + streamer == amount``."""

    amount: Money
    fee: Money
    streamer: Money


def split(amount: Money, *, percent: Decimal, min_fee: Money) -> FeeSplit:
    """Split ``amount`` into the platform fee and the streamer's share.

    ``fee = min(amount, max(min_fee, percent % of amount))``; the percentage is allocated exactly
    (``Money.allocate([percent, 100 - percent])``), never through floats. Raises ValueError for a
    non-positive amount, a percent outside 0..100, or a currency mismatch.
    """
    if not amount.is_positive:
        raise ValueError("a donation amount must be positive")
    if not Decimal(0) <= percent <= Decimal(100):
        raise ValueError("percent must be within 0..100")
    if min_fee.currency != amount.currency or min_fee.is_negative:
        raise ValueError("min_fee must be a non-negative amount in the donation's currency")
    by_percent = amount.allocate([percent, Decimal(100) - percent])[0]
    fee = min(max(min_fee, by_percent), amount)
    return FeeSplit(amount=amount, fee=fee, streamer=amount - fee)


# ---- moderation ---------------------------------------------------------------------------------


class Flag(StrEnum):
    """What moderation changed (stored with the donation; shown to support, never to viewers)."""

    control_chars = "control_chars"
    """Control, format or invisible characters were removed."""
    link_removed = "link_removed"
    """A URL, domain name or invite link was stripped."""
    banned_word = "banned_word"
    """A banned word stem was masked with asterisks."""
    truncated = "truncated"
    """The text was cut to the length limit."""
    empty = "empty"
    """Nothing showable was left."""


@dataclass(frozen=True, slots=True)
class Moderated:
    text: str
    """What may be shown ('' when nothing is left)."""
    flags: frozenset[Flag]


ELLIPSIS = "…"

_SCHEMES = r"(?:https?|ftp|wss?|tg|steam|discord)://"
_TLDS = (
    "ru|su|com|net|org|io|gg|tv|me|info|biz|xyz|top|site|online|shop|store|pro|app|dev|link|club|live|"
    "fun|ly|to|cc|co|uk|de|ua|by|kz|рф|рус|онлайн|сайт"
)
_LINK = re.compile(
    rf"""
    {_SCHEMES}\S+                                           # anything with a scheme
    | \bwww\.\S+                                            # www.example
    | \b(?:t\.me|discord\.gg|vk\.cc|bit\.ly|clck\.ru)/\S*     # invite and short links
    | \b[\w-]+(?:\.[\w-]+)*\.(?:{_TLDS})\b(?:/\S*)?           # bare domains (example.ru/path)
    """,
    re.IGNORECASE | re.VERBOSE,
)

# Latin, digit and symbol look-alikes of Cyrillic letters: "xуй" or "6лядь" match the Cyrillic stem.
_HOMOGLYPHS = str.maketrans(
    {
        "a": "а",
        "b": "в",
        "c": "с",
        "e": "е",
        "h": "н",
        "k": "к",
        "m": "м",
        "o": "о",
        "p": "р",
        "t": "т",
        "x": "х",
        "y": "у",
        "0": "о",
        "3": "з",
        "4": "ч",
        "6": "б",
        "@": "а",
    }
)
_LETTER_SYMBOLS = frozenset("@")
"""Non-alphanumeric characters that stand for a letter inside a word."""
_SEPARATORS = frozenset(".-_*'`\u00b7")
"""Characters people put inside a word to dodge a filter (``х.у.й``); skipped when matching."""


def _is_invisible(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn") and ch not in "\n\t"


def _fold(ch: str) -> str:
    """One character → its comparison form: lower case, no diacritics (ё → е, й → и), Cyrillic look-alike."""
    return (unicodedata.normalize("NFKD", ch.lower())[:1] or ch).translate(_HOMOGLYPHS)


def _is_letter(ch: str) -> bool:
    return ch.isalnum() or ch in _LETTER_SYMBOLS


@dataclass(frozen=True, slots=True)
class Stem:
    """A banned word stem: matches words that start with it, or (``anywhere``) contain it."""

    folded: str
    anywhere: bool


def prepare_stems(banned_words: Iterable[str]) -> tuple[Stem, ...]:
    """Parse a banned-words list: ``"бля"`` masks words starting with it, ``"*хуй"`` words containing it."""
    stems: dict[str, Stem] = {}
    for word in banned_words:
        anywhere = word.strip().startswith("*")
        folded = "".join(_fold(ch) for ch in word if _is_letter(ch))
        if folded and (folded not in stems or anywhere):
            stems[folded] = Stem(folded, anywhere)
    return tuple(sorted(stems.values(), key=lambda s: (-len(s.folded), s.folded)))


def _mask_banned(text: str, stems: Sequence[Stem]) -> tuple[str, bool]:
    """Mask (with ``*``) every word that a stem matches; separators inside a word are ignored."""
    if not stems:
        return text, False
    chars = list(text)
    folded: list[str] = []  # one entry per letter (folded) or word break (" ")
    where: list[int] = []  # its position in ``text``
    for i, ch in enumerate(chars):
        if _is_letter(ch):
            folded.append(_fold(ch))
        elif ch in _SEPARATORS:
            continue
        else:
            folded.append(" ")
        where.append(i)
    joined = "".join(folded)
    masked = False
    for stem in stems:
        start = joined.find(stem.folded)
        while start != -1:
            left = start
            while left > 0 and joined[left - 1] != " ":
                left -= 1
            right = start + len(stem.folded)
            while right < len(joined) and joined[right] != " ":
                right += 1
            if stem.anywhere or left == start:
                for j in range(where[left], where[right - 1] + 1):
                    if not chars[j].isspace():
                        chars[j] = "*"
                masked = True
            start = joined.find(stem.folded, start + 1)
    return "".join(chars), masked


def moderate(text: str | None, *, max_length: int, banned_words: Iterable[str] = ()) -> Moderated:
    """What of ``text`` may be shown on stream, and what was changed.

    Order: drop control/invisible characters → strip links → mask banned stems → collapse
    whitespace → cut to ``max_length`` characters (ending with ``…``). Never raises for any text.
    """
    if max_length < 1:
        raise ValueError("max_length must be positive")
    flags: set[Flag] = set()
    raw = unicodedata.normalize("NFC", text or "")
    visible = "".join(ch for ch in raw if not _is_invisible(ch))
    if visible != raw:
        flags.add(Flag.control_chars)
    without_links, links = _LINK.subn(" ", visible)
    if links:
        flags.add(Flag.link_removed)
    masked, banned = _mask_banned(without_links, prepare_stems(banned_words))
    if banned:
        flags.add(Flag.banned_word)
    collapsed = " ".join(masked.split())
    if len(collapsed) > max_length:
        collapsed = collapsed[: max_length - 1].rstrip() + ELLIPSIS
        flags.add(Flag.truncated)
    if not collapsed and text:
        flags.add(Flag.empty)
    return Moderated(text=collapsed, flags=frozenset(flags))
