"""What the payer is told about a refund — Russian texts for notifications. Pure.

The texts travel in the ``refund.*`` events (``notification_text``); the notification service
delivers them. Amounts are written the Russian way: ``1 499,00 ₽`` (non-breaking spaces).
"""

from __future__ import annotations

from payment_service.kit.money import Money
from payment_service.refund.states import RefundDestination, RefundStatus

_SYMBOLS = {"RUB": "₽", "USD": "$", "EUR": "€", "KZT": "₸", "BYN": "Br", "UAH": "₴", "GBP": "£", "CNY": "¥"}
_NBSP = "\u00a0"


def format_ru(money: Money) -> str:
    """``1 499,00 ₽`` for 149900 RUB: digit groups and the symbol joined by non-breaking spaces."""
    whole, _, fraction = money.to_decimal_string().lstrip("-").partition(".")
    groups: list[str] = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    text = _NBSP.join(groups) + ("," + fraction if fraction else "")
    return ("-" if money.is_negative else "") + text + _NBSP + _SYMBOLS.get(money.currency, money.currency)


def notification(event_type: str, amount: Money, destination: RefundDestination, status: RefundStatus) -> str:
    """The text for the payer of a ``refund.*`` event (``status`` matters for ``refund.requested``)."""
    shown = format_ru(amount)
    if event_type == "refund.succeeded":
        if destination is RefundDestination.wallet:
            return f"Возврат {shown} зачислен на ваш кошелёк."
        return f"Возврат {shown} оформлен. Деньги вернутся тем же способом оплаты в течение нескольких дней."
    if event_type == "refund.failed":
        return (
            f"Не удалось оформить возврат {shown} на исходный способ оплаты. "
            "Запросите возврат на кошелёк или обратитесь в поддержку."
        )
    if event_type == "refund.rejected":
        return f"Запрос на возврат {shown} отклонён. Подробности можно узнать в поддержке."
    if status is RefundStatus.pending_review:
        return f"Запрос на возврат {shown} принят и будет рассмотрен в течение нескольких дней."
    return f"Возврат {shown} одобрен."
