"""Refund rules: Steam-like auto-approval and the split of a refund over its sources. Pure.

Auto-approval (:func:`decide`), for refunds a *user* asks for:

* asked within ``auto_window`` (14 days) of the purchase, with less than ``max_playtime``
  (2 hours) played in the purchased games, and no more than ``abuse_max_refunds`` refunds of
  *other* purchases in the last ``abuse_period`` (30 days) → approved at once;
* otherwise → an administrator reviews it (``pending_review``), with the findings that stopped it;
* except two hard limits that reject at once: a request later than ``hard_window`` (90 days)
  after the purchase (``window_expired``), and — only when the platform's policy
  ``over_playtime`` is ``reject`` — too much playtime (``playtime_exceeded``).

Playtime that cannot be learned (the platform is down) is never guessed: it sends the request
to review. Refunds created by services and administrators are not subject to these rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from payment_service.kit.money import Money


class OverLimit(StrEnum):
    """What happens to a request with more playtime than the policy allows."""

    review = "review"
    """An administrator decides (Steam: "we'll take a look")."""
    reject = "reject"
    """Refused at once with ``refund_playtime_exceeded``."""


class Finding(StrEnum):
    """Why a request was not approved automatically."""

    outside_window = "outside_window"
    """Asked later than ``auto_window`` after the purchase."""
    window_expired = "window_expired"
    """Asked later than ``hard_window`` after the purchase: rejected."""
    playtime_exceeded = "playtime_exceeded"
    """Played at least ``max_playtime`` in the purchased games."""
    playtime_unknown = "playtime_unknown"
    """The platform could not tell the playtime."""
    frequent_refunds = "frequent_refunds"
    """More than ``abuse_max_refunds`` refunds of other purchases within ``abuse_period``."""


class Verdict(StrEnum):
    approve = "approve"
    """Refund now."""
    review = "review"
    """Queue for an administrator."""
    reject = "reject"
    """Refuse the request."""


@dataclass(frozen=True, slots=True)
class RefundPolicy:
    auto_window: timedelta = timedelta(days=14)
    max_playtime: timedelta = timedelta(hours=2)
    abuse_period: timedelta = timedelta(days=30)
    abuse_max_refunds: int = 3
    hard_window: timedelta = timedelta(days=90)
    over_playtime: OverLimit = OverLimit.review


@dataclass(frozen=True, slots=True)
class RefundFacts:
    """What the rules look at, gathered by the service."""

    purchased_at: datetime
    requested_at: datetime
    has_games: bool
    """True when the purchase contains games whose playtime matters."""
    playtime: timedelta | None
    """Total playtime in the purchased games; None when the platform could not tell."""
    recent_refunds: int
    """Refunds of the user's other purchases asked within ``abuse_period`` (not failed/rejected)."""


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    findings: tuple[Finding, ...] = ()
    rejected_for: Finding | None = None
    """The finding that rejected the request (when ``verdict`` is reject)."""


def decide(facts: RefundFacts, policy: RefundPolicy) -> Decision:
    """Approve, review or reject a user's refund request (see the module docstring)."""
    age = facts.requested_at - facts.purchased_at
    if age > policy.hard_window:
        return Decision(Verdict.reject, (Finding.window_expired,), Finding.window_expired)
    findings: list[Finding] = []
    if age > policy.auto_window:
        findings.append(Finding.outside_window)
    if facts.has_games:
        if facts.playtime is None:
            findings.append(Finding.playtime_unknown)
        elif facts.playtime >= policy.max_playtime:
            if policy.over_playtime is OverLimit.reject:
                return Decision(Verdict.reject, (Finding.playtime_exceeded,), Finding.playtime_exceeded)
            findings.append(Finding.playtime_exceeded)
    if facts.recent_refunds > policy.abuse_max_refunds:
        findings.append(Finding.frequent_refunds)
    return Decision(Verdict.review if findings else Verdict.approve, tuple(findings))


def allocate(amount: Money, remaining: Sequence[Money]) -> list[Money]:
    """Split a refund over the accounts that received the payment, in proportion to what each
    still holds of it (``remaining``: its share minus what earlier refunds took back).

    Parts sum exactly to ``amount`` and none exceeds its ``remaining`` (largest remainder), so
    the last refund takes back exactly what is left on every account. Raises ValueError when
    ``amount`` is not positive or exceeds the sum of ``remaining``.
    """
    if not amount.is_positive:
        raise ValueError("a refund amount must be positive")
    left = sum((m.amount_minor for m in remaining), 0)
    if any(m.is_negative or m.currency != amount.currency for m in remaining):
        raise ValueError("remaining shares must be non-negative and in the refund's currency")
    if amount.amount_minor > left:
        raise ValueError("the refund exceeds what the sources still hold")
    return amount.allocate([m.amount_minor for m in remaining])
