"""Helpers every adapter uses: credentials, amount checks, money formats."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import SecretStr

from payment_service.providers.errors import ProviderAmountMismatch, ProviderInvalidRequest
from payment_service.providers.ports import ProviderResult


def credential(credentials: Mapping[str, Any], provider: str, name: str) -> str:
    """A credential field from ``resources.provider_credentials[provider]`` (str or SecretStr)."""
    value = credentials.get(name)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str) or not value:
        raise ProviderInvalidRequest(
            f"{provider}: credential {name!r} is missing", provider=provider, operation="config"
        )
    return value


def minor_to_decimal(amount_minor: int) -> str:
    """122000 → "1220.00" (two-decimal currencies only: RUB)."""
    sign = "-" if amount_minor < 0 else ""
    a = abs(amount_minor)
    return f"{sign}{a // 100}.{a % 100:02d}"


def decimal_to_minor(value: str) -> int:
    """ "1220.00" → 122000 without floats; raises ValueError on anything else."""
    text = value.strip()
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
        raise ValueError(f"not a 2-decimal amount: {value!r}")
    return int(whole) * 100 + int((frac + "00")[:2])


def check_amount(result: ProviderResult, *, amount_minor: int, currency: str, operation: str) -> ProviderResult:
    """Raise ProviderAmountMismatch when the provider reports another amount/currency than requested."""
    if (result.amount_minor, result.currency) != (amount_minor, currency):
        raise ProviderAmountMismatch(
            f"{result.provider}: asked {amount_minor} {currency}, provider reports {result.amount_minor} {result.currency}",
            expected=(amount_minor, currency),
            actual=(result.amount_minor, result.currency),
            provider=result.provider,
            operation=operation,
        )
    return result


def ip_allowed(remote_addr: str | None, networks: Iterable[str]) -> bool:
    if not remote_addr:
        return False
    try:
        ip = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    for net in networks:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False
