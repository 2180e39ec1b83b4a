"""Sber callbacks: GET with query params, ``checksum`` = uppercase hex HMAC-SHA256 over sorted ``name;value;``."""

from __future__ import annotations

import hashlib
import hmac

from emulators._common.state import BaseState


def checksum(params: dict[str, str], secret: str) -> str:
    data = "".join(f"{k};{params[k]};" for k in sorted(params) if k not in ("checksum", "sign_alias"))
    return hmac.new(secret.encode(), data.encode(), hashlib.sha256).hexdigest().upper()


def notify(
    state: BaseState, *, url: str | None, params: dict[str, str], secret: str, key: str, mode: str | None
) -> None:
    signed = dict(params)
    signed["checksum"] = checksum(params, secret)
    if mode == "webhook_bad_signature":
        signed["checksum"] = "0" * 64
        mode = None
    state.webhooks.send(
        key=key,
        url=url or state.config.webhook_url,
        event=f"{params.get('operation')}:{params.get('status')}",
        body=b"",
        method="GET",
        params=signed,
        mode=mode,
    )
