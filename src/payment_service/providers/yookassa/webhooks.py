"""YooKassa notifications are NOT signed: trust = source IP in the allow-list + re-fetch from the API.

This module does the offline part (IP check, parsing); the adapter re-fetches the object and builds
the :class:`ProviderEvent` from the API's answer only, never from the notification body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydantic import ValidationError

from payment_service.providers._base import ip_allowed
from payment_service.providers.errors import ProviderSignatureInvalid
from payment_service.providers.yookassa.schemas import YKNotification

PROVIDER = "yookassa"
PAYMENT_EVENTS = {"payment.waiting_for_capture", "payment.succeeded", "payment.canceled"}
REFUND_EVENTS = {"refund.succeeded"}


def verify_source(remote_addr: str | None, allowlist: Iterable[str]) -> None:
    if not ip_allowed(remote_addr, allowlist):
        raise ProviderSignatureInvalid(
            f"yookassa: notification from {remote_addr!r} outside the allow-list",
            provider=PROVIDER,
            operation="webhook",
        )


def parse_notification(body: bytes) -> YKNotification:
    try:
        note = YKNotification.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise ProviderSignatureInvalid(
            "yookassa: malformed notification", provider=PROVIDER, operation="webhook"
        ) from exc
    if note.type != "notification" or note.event not in PAYMENT_EVENTS | REFUND_EVENTS:
        raise ProviderSignatureInvalid(
            f"yookassa: unexpected event {note.event!r}", provider=PROVIDER, operation="webhook"
        )
    if not isinstance(note.object.get("id"), str):
        raise ProviderSignatureInvalid(
            "yookassa: notification without object id", provider=PROVIDER, operation="webhook"
        )
    return note
