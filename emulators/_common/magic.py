"""The magic-value table shared by every emulator (EMULATOR CONVENTION, documented in emulators/README.md).

Outcome vocabulary (provider emulators map each to their own wire codes):

* ``success`` / ``success_3ds``;
* ``decline:<reason>`` with reason in :data:`DECLINE_REASONS`;
* create-time faults: ``hang``, ``error_503``, ``error_500``, ``slow``, ``drop_after_charge``, ``processing_202``;
* webhook modes: ``webhook_duplicate``, ``webhook_out_of_order``, ``webhook_never``, ``webhook_bad_signature``.

Priority: an outcome queued through ``POST /_emulator/next-outcome`` > the amount's kopecks > the
card entered on the confirmation page > success.
"""

from __future__ import annotations

DECLINE_REASONS = (
    "insufficient_funds",
    "card_expired",
    "3ds_failed",
    "fraud_suspected",
    "issuer_unavailable",
    "general_decline",
    "invalid_card",
    "limit_exceeded",
    "expired",
)

FAULTS = ("hang", "error_503", "error_500", "slow", "drop_after_charge", "processing_202")
WEBHOOK_MODES = ("webhook_duplicate", "webhook_out_of_order", "webhook_never", "webhook_bad_signature")

# amount_minor % 100 → outcome
AMOUNT_KOPECKS: dict[int, str] = {
    11: "decline:insufficient_funds",
    12: "decline:card_expired",
    13: "decline:3ds_failed",
    14: "decline:fraud_suspected",
    15: "decline:issuer_unavailable",
    16: "decline:general_decline",
    17: "decline:invalid_card",
    18: "decline:limit_exceeded",
    19: "decline:expired",
    51: "hang",
    52: "error_503",
    53: "error_500",
    54: "slow",
    55: "drop_after_charge",
    56: "processing_202",  # YooKassa only: HTTP 202 + retry_after once, the repeat with the same key is processed
    61: "webhook_duplicate",
    62: "webhook_out_of_order",
    63: "webhook_never",
    64: "webhook_bad_signature",
}

# Full PANs with a fixed behaviour (provider test cards from providers-reference §1.14, §2.9, §3.6)
CARDS: dict[str, str] = {
    "5555555555554444": "success",
    "5555555555554477": "success_3ds",
    "4793128161644804": "success",
    "2201382000000013": "success",
    "2201382000000047": "success_3ds",
    "2201382000000039": "success",
    "2201382000000005": "decline:3ds_failed",
    "2201382000000021": "decline:general_decline",
    "2201382000000831": "decline:insufficient_funds",
    "2200770239097761": "success",
    "2201382000000591": "success",
    "4111111111111111": "success_3ds",
    "5555555555555599": "success",
    "2200000000000053": "success_3ds",
}

# Any other PAN: by its last 4 digits
CARD_LAST4: dict[str, str] = {
    "4444": "success",
    "4477": "success_3ds",
    "0002": "decline:insufficient_funds",
    "0010": "decline:3ds_failed",
    "0028": "decline:fraud_suspected",
    "0036": "decline:card_expired",
    "0044": "decline:issuer_unavailable",
    "0051": "decline:general_decline",
    "0069": "decline:invalid_card",
    "0077": "decline:limit_exceeded",
}

DEFAULT_CARD = "5555555555554444"
THREE_DS_PASSWORD = "12345678"  # noqa: S105 - a documented test value, not a secret


def amount_outcome(amount_minor: int) -> str | None:
    return AMOUNT_KOPECKS.get(amount_minor % 100)


def card_outcome(pan: str) -> str:
    digits = "".join(ch for ch in pan if ch.isdigit())
    if digits in CARDS:
        return CARDS[digits]
    return CARD_LAST4.get(digits[-4:], "success")


def card_brand(pan: str) -> str:
    """Brand as YooKassa spells ``card_type`` (the emulator's own tiny BIN table)."""
    d = "".join(ch for ch in pan if ch.isdigit())
    p4 = int(d[:4]) if len(d) >= 4 else 0
    if 2200 <= p4 <= 2204:
        return "Mir"
    if 2221 <= p4 <= 2720 or 51 <= int(d[:2] or 0) <= 55:
        return "MasterCard"
    if d.startswith("4"):
        return "Visa"
    return "Unknown"


def is_fault(outcome: str | None) -> bool:
    return outcome in FAULTS


def is_webhook_mode(outcome: str | None) -> bool:
    return outcome in WEBHOOK_MODES
