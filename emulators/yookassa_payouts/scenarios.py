"""Outcomes of the YooKassa Payouts emulator (EMULATOR CONVENTION, see emulators/README.md).

Vocabulary: ``success``; ``cancel:<reason>`` with a YooKassa payout cancellation reason; the shared
create-time faults (``hang``, ``error_503``, ``error_500``, ``slow``, ``drop_after_charge``,
``processing_202``) and webhook modes (``webhook_duplicate``, ``webhook_never``,
``webhook_bad_signature``). Priority: a queued outcome > the amount's kopecks > success. The
gateway's payout balance is real: a payout above it is canceled with ``insufficient_funds``.
"""

from __future__ import annotations

CANCEL_REASONS = (
    "fraud_suspected",
    "general_decline",
    "insufficient_funds",
    "issuer_unavailable",
    "one_time_limit_exceeded",
    "periodic_limit_exceeded",
    "recipient_check_failed",
    "recipient_not_found",
    "rejected_by_payee",
)
# who canceled (cancellation_details.party) per reason
PARTY = {"fraud_suspected": "yoo_money", "insufficient_funds": "yoo_money", "one_time_limit_exceeded": "yoo_money"}

FAULTS = ("hang", "error_503", "error_500", "slow", "drop_after_charge", "processing_202")
WEBHOOK_MODES = ("webhook_duplicate", "webhook_never", "webhook_bad_signature")
OUTCOMES = frozenset({"success", *(f"cancel:{r}" for r in CANCEL_REASONS), *FAULTS, *WEBHOOK_MODES})

AMOUNT_KOPECKS: dict[int, str] = {
    11: "cancel:insufficient_funds",
    14: "cancel:fraud_suspected",
    15: "cancel:issuer_unavailable",
    16: "cancel:general_decline",
    18: "cancel:one_time_limit_exceeded",
    20: "cancel:recipient_not_found",
    21: "cancel:rejected_by_payee",
    22: "cancel:recipient_check_failed",
    51: "hang",
    52: "error_503",
    53: "error_500",
    54: "slow",
    55: "drop_after_charge",
    56: "processing_202",
    61: "webhook_duplicate",
    63: "webhook_never",
    64: "webhook_bad_signature",
}

SBP_MAX_MINOR = 500_000_00
"""SBP payouts: 1 ₽ – 500 000 ₽ per payout (providers-reference §1.15); above it: one_time_limit_exceeded."""

# GET /v3/sbp_banks (field names per the SDK's SbpParticipantBank; the list is a fixture)
SBP_BANKS = [
    {"bank_id": "100000000111", "name": "Сбербанк", "bic": "044525225"},
    {"bank_id": "100000000004", "name": "Т-Банк", "bic": "044525974"},
    {"bank_id": "100000000005", "name": "Банк ВТБ", "bic": "044525187"},
    {"bank_id": "100000000008", "name": "Альфа-Банк", "bic": "044525593"},
    {"bank_id": "100000000001", "name": "Газпромбанк", "bic": "044525823"},
    {"bank_id": "100000000007", "name": "Райффайзенбанк", "bic": "044525700"},
]


def amount_outcome(amount_minor: int) -> str | None:
    return AMOUNT_KOPECKS.get(amount_minor % 100)
