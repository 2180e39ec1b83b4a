"""YooKassa payout notifications: unsigned JSON POSTs ``{"type": "notification", "event", "object"}``, ACK = HTTP 200."""

from __future__ import annotations

import copy
import json
from typing import Any

from emulators._common.state import BaseState


def notify(state: BaseState, *, event: str, obj: dict[str, Any], key: str, mode: str | None) -> None:
    body_obj = copy.deepcopy(obj)
    if mode == "webhook_bad_signature":
        # YooKassa does not sign: a forged notification is one whose content the API does not confirm.
        body_obj["status"] = "succeeded"
        body_obj.pop("cancellation_details", None)
        event = "payout.succeeded"
        mode = None
    body = json.dumps({"type": "notification", "event": event, "object": body_obj}, ensure_ascii=False).encode()
    state.webhooks.send(
        key=key,
        url=state.config.webhook_url,
        event=event,
        body=body,
        headers={"Content-Type": "application/json"},
        mode=mode,
    )
