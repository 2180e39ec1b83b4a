"""Shared outcomes on Sber's wire: orderStatus 6 + actionCode (UNCONFIRMED codes, ISO 8583-like RBS values)."""

from __future__ import annotations

# reason → (actionCode, actionCodeDescription)
DECLINES: dict[str, tuple[int, str]] = {
    "insufficient_funds": (116, "Недостаточно средств"),
    "card_expired": (101, "Истёк срок действия карты"),
    "3ds_failed": (-2006, "Неуспешная аутентификация 3-D Secure"),
    "fraud_suspected": (59, "Подозрение в мошенничестве"),
    "issuer_unavailable": (91, "Эмитент недоступен"),
    "general_decline": (5, "Отказ эмитента"),
    "invalid_card": (14, "Неверный номер карты"),
    "limit_exceeded": (121, "Превышен лимит"),
    "expired": (-2007, "Истёк срок сессии"),
}
