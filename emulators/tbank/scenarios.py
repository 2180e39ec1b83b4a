"""How the shared outcomes look on T-Bank's wire (Status + ErrorCode, providers-reference §2.4, §2.8)."""

from __future__ import annotations

# reason → (Status, ErrorCode, Message)
DECLINES: dict[str, tuple[str, str, str]] = {
    "insufficient_funds": ("REJECTED", "1051", "Недостаточно средств на карте"),
    "card_expired": ("REJECTED", "1054", "Истек срок действия карты"),
    "3ds_failed": ("AUTH_FAIL", "101", "Не пройдена идентификация 3DS"),
    "fraud_suspected": ("REJECTED", "1043", "Подозрение в мошенничестве"),
    "issuer_unavailable": ("REJECTED", "1091", "Эмитент недоступен"),
    "general_decline": ("REJECTED", "1006", "Проверьте реквизиты или воспользуйтесь другой картой"),
    "invalid_card": ("REJECTED", "1014", "Неверно введены реквизиты карты"),
    "limit_exceeded": ("REJECTED", "1013", "Превышен лимит по карте"),
    "expired": ("DEADLINE_EXPIRED", "0", "Истек срок оплаты"),
}
