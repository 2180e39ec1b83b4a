"""Bank-transfer webhooks: ``X-BT-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``.

The timestamp is inside the MAC, so a replayed body with a new ``t`` fails; ``tolerance_seconds``
bounds how old a signature may be (0 disables the age check, for recorded fixtures).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from pydantic import ValidationError

from payment_service.providers.bank_transfer.schemas import BTEvent
from payment_service.providers.errors import ProviderSignatureInvalid

PROVIDER = "bank_transfer"
HEADER = "x-bt-signature"
EVENTS = {"transfer.completed", "transfer.rejected"}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_and_parse(
    body: bytes, headers: Mapping[str, str], *, secret: str, tolerance_seconds: int = 300, now: float | None = None
) -> BTEvent:
    lowered = {k.lower(): v for k, v in headers.items()}
    parts = dict(p.split("=", 1) for p in lowered.get(HEADER, "").split(",") if "=" in p)
    ts, given = parts.get("t", ""), parts.get("v1", "")
    if not ts.isdigit() or not given:
        raise ProviderSignatureInvalid(
            "bank_transfer: signature header missing", provider=PROVIDER, operation="webhook"
        )
    expected = sign(secret, int(ts), body).split("v1=", 1)[1]
    if not hmac.compare_digest(given, expected):
        raise ProviderSignatureInvalid("bank_transfer: signature mismatch", provider=PROVIDER, operation="webhook")
    if tolerance_seconds and abs((now or time.time()) - int(ts)) > tolerance_seconds:
        raise ProviderSignatureInvalid("bank_transfer: signature too old", provider=PROVIDER, operation="webhook")
    try:
        event = BTEvent.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise ProviderSignatureInvalid(
            "bank_transfer: malformed event", provider=PROVIDER, operation="webhook"
        ) from exc
    if event.type not in EVENTS:
        raise ProviderSignatureInvalid(
            f"bank_transfer: unexpected event {event.type!r}", provider=PROVIDER, operation="webhook"
        )
    return event
