"""Sber callbacks: ``checksum`` = HMAC-SHA256 (callback secret) over ``name;value;`` sorted by name,
``checksum``/``sign_alias`` excluded, uppercase hex (providers-reference §3.5). Compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl

from payment_service.providers.errors import ProviderSignatureInvalid

PROVIDER = "sber"
OPERATIONS = {"approved", "deposited", "reversed", "refunded", "declinedByTimeout"}


def checksum(params: Mapping[str, str], secret: str) -> str:
    data = "".join(f"{k};{params[k]};" for k in sorted(params) if k not in ("checksum", "sign_alias"))
    return hmac.new(secret.encode(), data.encode(), hashlib.sha256).hexdigest().upper()


def callback_params(body: bytes, query: str | Mapping[str, str]) -> dict[str, str]:
    """Callback parameters: Sber sends them as a GET query string or as a form POST body."""
    params = dict(parse_qsl(query, keep_blank_values=True)) if isinstance(query, str) else dict(query)
    if body:
        params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return params


def verify(params: Mapping[str, str], secret: str) -> None:
    given = params.get("checksum", "")
    if not given or not hmac.compare_digest(given.upper(), checksum(params, secret)):
        raise ProviderSignatureInvalid("sber: callback checksum mismatch", provider=PROVIDER, operation="webhook")
    for name in ("mdOrder", "orderNumber", "operation", "status"):
        if not params.get(name):
            raise ProviderSignatureInvalid(f"sber: callback without {name}", provider=PROVIDER, operation="webhook")
    if params["operation"] not in OPERATIONS:
        raise ProviderSignatureInvalid(
            f"sber: unknown operation {params['operation']!r}", provider=PROVIDER, operation="webhook"
        )
