"""Outcomes of the bank-transfer emulator (EMULATOR CONVENTION, see emulators/README.md).

Vocabulary: ``success``; ``reject:<code>`` with a rejection code of the bank; the shared create-time
faults (``hang``, ``error_503``, ``error_500``, ``slow``, ``drop_after_charge``) and webhook modes
(``webhook_duplicate``, ``webhook_never``, ``webhook_bad_signature``). Priority: a queued outcome >
the amount's kopecks > success.
"""

from __future__ import annotations

REJECTIONS = {
    "insufficient_funds": "Not enough money on the payer's account",
    "account_not_found": "Recipient account not found",
    "account_closed": "Recipient account is closed",
    "name_mismatch": "Recipient name does not match the account holder",
    "limit_exceeded": "Transfer limit exceeded",
    "compliance_rejected": "Rejected by the bank's compliance control",
    "bank_unavailable": "Recipient bank is not available",
}
FAULTS = ("hang", "error_503", "error_500", "slow", "drop_after_charge")
WEBHOOK_MODES = ("webhook_duplicate", "webhook_never", "webhook_bad_signature")
OUTCOMES = frozenset({"success", *(f"reject:{r}" for r in REJECTIONS), *FAULTS, *WEBHOOK_MODES})

AMOUNT_KOPECKS: dict[int, str] = {
    11: "reject:insufficient_funds",
    14: "reject:compliance_rejected",
    15: "reject:bank_unavailable",
    18: "reject:limit_exceeded",
    20: "reject:account_not_found",
    21: "reject:account_closed",
    22: "reject:name_mismatch",
    51: "hang",
    52: "error_503",
    53: "error_500",
    54: "slow",
    55: "drop_after_charge",
    61: "webhook_duplicate",
    63: "webhook_never",
    64: "webhook_bad_signature",
}

_WEIGHTS = (7, 1, 3) * 8


def account_matches_bic(account: str, bic: str) -> bool:
    """Bank of Russia control digit: BIC's last 3 digits + account, weights 7-1-3, sum of last digits ≡ 0 (mod 10)."""
    digits = bic[-3:] + account
    if len(digits) != 23 or not digits.isdigit():
        return False
    return sum((int(d) * w) % 10 for d, w in zip(digits, _WEIGHTS, strict=False)) % 10 == 0


def amount_outcome(amount_minor: int) -> str | None:
    return AMOUNT_KOPECKS.get(amount_minor % 100)
