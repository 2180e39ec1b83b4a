"""T-Bank notifications: JSON POST signed with the same Token algorithm; ACK = HTTP 200 with body ``OK``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from emulators._common.state import BaseState


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def token(params: dict[str, Any], password: str) -> str:
    """SHA-256 over the values of root-level scalar params + Password, sorted by key (§2.2)."""
    pairs = {k: v for k, v in params.items() if k != "Token" and not isinstance(v, dict | list) and v is not None}
    pairs["Password"] = password
    return hashlib.sha256("".join(_scalar(pairs[k]) for k in sorted(pairs)).encode()).hexdigest()


def accept_ok(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.text.strip() == "OK"


def notify(
    state: BaseState, *, url: str | None, payload: dict[str, Any], password: str, key: str, mode: str | None
) -> None:
    body = dict(payload)
    body["Token"] = token(body, password)
    if mode == "webhook_bad_signature":
        body["Token"] = "0" * 64
        mode = None
    state.webhooks.send(
        key=key,
        url=url or state.config.webhook_url,
        event=str(payload.get("Status")),
        body=json.dumps(body, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
        mode=mode,
        accept=accept_ok,
    )
