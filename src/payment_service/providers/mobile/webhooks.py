"""Aggregator webhooks: ``X-MC-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``.

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

from payment_service.providers.errors import ProviderSignatureInvalid
from payment_service.providers.mobile.schemas import MCEvent

PROVIDER = "mobile"
HEADER = "x-mc-signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_and_parse(
    body: bytes, headers: Mapping[str, str], *, secret: str, tolerance_seconds: int = 300, now: float | None = None
) -> MCEvent:
    lowered = {k.lower(): v for k, v in headers.items()}
    parts = dict(p.split("=", 1) for p in lowered.get(HEADER, "").split(",") if "=" in p)
    ts, given = parts.get("t", ""), parts.get("v1", "")
    if not ts.isdigit() or not given:
        raise ProviderSignatureInvalid("mobile: signature header missing", provider=PROVIDER, operation="webhook")
    expected = sign(secret, int(ts), body).split("v1=", 1)[1]
    if not hmac.compare_digest(given, expected):
        raise ProviderSignatureInvalid("mobile: signature mismatch", provider=PROVIDER, operation="webhook")
    if tolerance_seconds and abs((now or time.time()) - int(ts)) > tolerance_seconds:
        raise ProviderSignatureInvalid("mobile: signature too old", provider=PROVIDER, operation="webhook")
    try:
        return MCEvent.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise ProviderSignatureInvalid("mobile: malformed event", provider=PROVIDER, operation="webhook") from exc
