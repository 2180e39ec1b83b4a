"""YooKassa payout notifications are NOT signed: trust = source IP in the allow-list + re-fetch.

This module does the offline part (IP check, parsing); the adapter re-fetches the payout with
``GET /payouts/{id}`` and builds the event from the API's answer only, never from the body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydantic import ValidationError

from payment_service.providers._base import ip_allowed
from payment_service.providers.errors import ProviderSignatureInvalid
from payment_service.providers.yookassa_payouts.schemas import YPNotification

PROVIDER = "yookassa_payouts"
EVENTS = {"payout.succeeded", "payout.canceled"}


def verify_source(remote_addr: str | None, allowlist: Iterable[str]) -> None:
    if not ip_allowed(remote_addr, allowlist):
        raise ProviderSignatureInvalid(
            f"yookassa_payouts: notification from {remote_addr!r} outside the allow-list",
            provider=PROVIDER,
            operation="webhook",
        )


def parse_notification(body: bytes) -> YPNotification:
    try:
        note = YPNotification.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise ProviderSignatureInvalid(
            "yookassa_payouts: malformed notification", provider=PROVIDER, operation="webhook"
        ) from exc
    if note.type != "notification" or note.event not in EVENTS:
        raise ProviderSignatureInvalid(
            f"yookassa_payouts: unexpected event {note.event!r}", provider=PROVIDER, operation="webhook"
        )
    if not isinstance(note.object.get("id"), str):
        raise ProviderSignatureInvalid(
            "yookassa_payouts: notification without object id", provider=PROVIDER, operation="webhook"
        )
    return note
