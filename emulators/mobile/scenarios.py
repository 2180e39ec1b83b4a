"""Operators by DEF code and the failure codes of the aggregator API (EMULATOR CONVENTION: simplified ranges)."""

from __future__ import annotations

OPERATOR_DEF: dict[str, range | tuple[int, ...]] = {
    "mts": (*range(910, 920), *range(980, 990)),
    "beeline": (903, 905, 906, 909, *range(960, 969)),
    "megafon": (*range(920, 940),),
    "tele2": (900, 901, 902, 904, 908, 950, 951, 952, 953, 958, 977, *range(991, 997)),
}
# per-payment limits in kopecks (min 10 ₽; max 5 000–15 000 ₽ by operator, providers-reference §4.4)
MIN_AMOUNT = 1_000
MAX_AMOUNT = {"mts": 1_500_000, "beeline": 1_500_000, "megafon": 1_500_000, "tele2": 500_000}

DECLINES = {
    "insufficient_funds": "insufficient_funds",
    "card_expired": "number_blocked",
    "invalid_card": "number_blocked",
    "3ds_failed": "subscriber_declined",
    "general_decline": "subscriber_declined",
    "fraud_suspected": "fraud_suspected",
    "issuer_unavailable": "operator_unavailable",
    "limit_exceeded": "limit_exceeded",
    "expired": "subscriber_timeout",
}


def operator_of(phone: str) -> str | None:
    if len(phone) != 11 or not phone.isdigit() or phone[0] != "7":
        return None
    code = int(phone[1:4])
    for name, codes in OPERATOR_DEF.items():
        if code in codes:
            return name
    return None
