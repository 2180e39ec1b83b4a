"""QIWI notification signature (historic): header ``X-Api-Signature-SHA256`` =
HMAC-SHA256(secret, ``"{currency}|{value with 2 decimals}|{billId}|{siteId}|{status}"``), hex.
Kept so archived notifications can still be authenticated; new ones are refused by the adapter.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

from payment_service.providers.qiwi.schemas import QiwiBill


def signature(bill: QiwiBill, secret: str) -> str:
    value = f"{Decimal(bill.amount.value):.2f}"
    data = f"{bill.amount.currency}|{value}|{bill.billId}|{bill.siteId}|{bill.status.value}"
    return hmac.new(secret.encode(), data.encode(), hashlib.sha256).hexdigest()


def signature_valid(bill: QiwiBill, secret: str, given: str) -> bool:
    return hmac.compare_digest(signature(bill, secret), given.lower())
