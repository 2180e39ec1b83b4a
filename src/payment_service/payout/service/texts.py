"""What the payee is told about a payout (Russian: the payee reads it)."""

from __future__ import annotations

import re

from payment_service.kit.money import Money
from payment_service.models.payout import Payout
from payment_service.payout.states import PROVIDER_REJECTED, PROVIDER_UNAVAILABLE, PayoutStatus
from payment_service.providers.ports import PayoutMethod

# ---- texts for the payee (Russian) --------------------------------------------------------------

_SYMBOLS = {"RUB": "₽"}
_FAILURE_TEXT = {
    "insufficient_funds": "временно недостаточно средств на счёте выплат платформы",
    "recipient_not_found": "получатель не найден",
    "invalid_destination": "реквизиты не подходят для выплаты",
    "limit_exceeded": "превышен лимит выплат",
    "fraud_suspected": "выплата отклонена службой безопасности",
    "issuer_unavailable": "банк получателя не ответил",
    "rejected_by_payee": "получатель отказался от выплаты",
    "recipient_check_failed": "данные получателя не совпали",
    PROVIDER_UNAVAILABLE: "платёжный сервис недоступен",
    PROVIDER_REJECTED: "платёжный сервис отклонил выплату",
}


def format_rub(money: Money) -> str:
    """``1 500,00 ₽`` (non-breaking thin grouping, decimal comma)."""
    whole, _, frac = money.to_decimal_string().lstrip("-").partition(".")
    groups: list[str] = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    sign = "-" if money.is_negative else ""
    text = "\u00a0".join(groups or ["0"]) + ("," + frac if frac else "")
    return f"{sign}{text}\u00a0{_SYMBOLS.get(money.currency, money.currency)}"


def _destination_ru(payout: Payout) -> str:
    digits = re.findall(r"\d{4}", payout.destination_masked)
    tail = f" *{digits[0]}" if digits else ""
    return {
        PayoutMethod.bank_card: f"карту{tail}",
        PayoutMethod.bank_account: f"счёт{tail}",
        PayoutMethod.yoomoney: f"кошелёк ЮMoney{tail}",
        PayoutMethod.sbp: f"номер телефона по СБП{tail}",
    }[PayoutMethod(payout.method)]


def notification_text(payout: Payout) -> str:
    amount = format_rub(Money(payout.amount_minor, payout.currency))
    status = PayoutStatus(payout.status)
    if status is PayoutStatus.succeeded:
        return f"Выплата {amount} отправлена на {_destination_ru(payout)}"
    if status is PayoutStatus.failed:
        reason = _FAILURE_TEXT.get(payout.failure_code or "", "выплата отклонена")
        return f"Выплата {amount} не выполнена: {reason}. Деньги вернулись на ваш баланс"
    if status is PayoutStatus.canceled:
        return f"Выплата {amount} отменена. Деньги вернулись на ваш баланс"
    return f"Выплата {amount} на {_destination_ru(payout)} создана и скоро будет отправлена"
