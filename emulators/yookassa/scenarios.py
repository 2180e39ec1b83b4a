"""How the shared outcomes look on YooKassa's wire (cancellation_details)."""

from __future__ import annotations

# outcome reason → (party, reason)
DECLINES: dict[str, tuple[str, str]] = {
    "insufficient_funds": ("payment_network", "insufficient_funds"),
    "card_expired": ("payment_network", "card_expired"),
    "3ds_failed": ("payment_network", "3d_secure_failed"),
    "fraud_suspected": ("yoo_money", "fraud_suspected"),
    "issuer_unavailable": ("payment_network", "issuer_unavailable"),
    "general_decline": ("payment_network", "general_decline"),
    "invalid_card": ("payment_network", "invalid_card_number"),
    "limit_exceeded": ("payment_network", "payment_method_limit_exceeded"),
    "expired": ("yoo_money", "expired_on_confirmation"),
}

# hold window by method (seconds): cards/SberPay/wallet 7 days, mobile balance 6 hours
HOLD_SECONDS = {"bank_card": 7 * 86400, "sberbank": 7 * 86400, "yoo_money": 7 * 86400, "mobile_balance": 6 * 3600}

CONFIRMATIONS = {
    "bank_card": {"redirect"},
    "sbp": {"redirect", "qr"},
    "sberbank": {"redirect", "external", "qr", "mobile_application"},
    "mobile_balance": {"external"},
    "yoo_money": {"redirect"},
    "tinkoff_bank": {"redirect"},
}
PARTIAL_CAPTURE = {"bank_card", "sberbank", "yoo_money"}
TWO_STAGE = {"bank_card", "sberbank", "yoo_money", "mobile_balance"}
