"""T-Bank notifications: verify ``Token`` (same algorithm as requests, constant-time), TerminalKey; answer ``OK``."""

from __future__ import annotations

import hmac
import json
from typing import Any

from pydantic import ValidationError

from payment_service.providers.errors import ProviderSignatureInvalid
from payment_service.providers.tbank.client import make_token
from payment_service.providers.tbank.schemas import TBNotification

PROVIDER = "tbank"
ACK = "OK"


def verify_and_parse(body: bytes, *, terminal_key: str, password: str) -> TBNotification:
    try:
        params: Any = json.loads(body)
    except ValueError as exc:
        raise ProviderSignatureInvalid(
            "tbank: notification is not JSON", provider=PROVIDER, operation="webhook"
        ) from exc
    if not isinstance(params, dict) or not isinstance(params.get("Token"), str):
        raise ProviderSignatureInvalid("tbank: notification without Token", provider=PROVIDER, operation="webhook")
    if not hmac.compare_digest(params["Token"], make_token(params, password)):
        raise ProviderSignatureInvalid("tbank: notification Token mismatch", provider=PROVIDER, operation="webhook")
    if params.get("TerminalKey") != terminal_key:
        raise ProviderSignatureInvalid(
            "tbank: notification for another terminal", provider=PROVIDER, operation="webhook"
        )
    try:
        return TBNotification.model_validate(params)
    except ValidationError as exc:
        raise ProviderSignatureInvalid("tbank: malformed notification", provider=PROVIDER, operation="webhook") from exc
