"""Bank webhooks: JSON POST, ``X-BT-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``, ACK = HTTP 200."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from emulators._common.state import BaseState


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def notify(state: BaseState, *, event: str, data: dict[str, Any], secret: str, key: str, mode: str | None) -> None:
    body = json.dumps(
        {"id": f"evt_{uuid.uuid4().hex}", "type": event, "created_at": int(time.time()), "data": data},
        ensure_ascii=False,
    ).encode()
    sig = signature(secret, int(time.time()), body)
    if mode == "webhook_bad_signature":
        sig = signature("forged", int(time.time()), body)
        mode = None
    state.webhooks.send(
        key=key,
        url=state.config.webhook_url,
        event=event,
        body=body,
        headers={"Content-Type": "application/json", "X-BT-Signature": sig},
        mode=mode,
    )
