"""Vault API (OpenBao or HashiCorp Vault): provider credentials (KV v2) and Transit encryption.

* :func:`load_provider_credentials` reads one KV v2 secret,
  ``{kv_mount}/data/{providers_path}``, whose keys are provider names and whose values are that
  provider's credentials, e.g. ``{"yookassa": {"shop_id": ..., "secret_key": ...},
  "qiwi": {"enabled": false}}``. An entry with ``"enabled": false`` means the provider is off.
  It runs once at API/worker start-up. In production a missing token, an unreachable Vault, a
  denied or missing secret is a start-up error (:class:`VaultError`); elsewhere it is a warning
  and the service runs without provider credentials.
* :func:`encrypt` / :func:`decrypt` use the Transit engine (``settings.vault.transit_mount``)
  for personal data and bank details; the named key is created on first use.

The raw HTTP API is used through the service's shared ``httpx.AsyncClient`` (``hvac`` is
synchronous). Secret values are never logged, and no error message carries one.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx
import orjson
import structlog

from payment_service.config import Settings

log = structlog.get_logger(__name__)


class VaultError(RuntimeError):
    """Vault cannot give what was asked: no token, unreachable, denied, missing, or a bad answer.

    The message names the Vault address and what failed; it never contains a secret.
    """


async def _call(
    settings: Settings,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    json: dict[str, Any] | None = None,
    what: str,
) -> httpx.Response:
    vault = settings.vault
    addr = vault.addr.rstrip("/")
    if vault.token is None or not vault.token.get_secret_value():
        raise VaultError(f"cannot {what}: no Vault token configured for {addr} (set PAYMENT_VAULT__TOKEN)")
    try:
        return await http.request(
            method,
            f"{addr}/v1/{path}",
            json=json,
            headers={"X-Vault-Token": vault.token.get_secret_value()},
            timeout=vault.timeout_seconds,
        )
    except httpx.HTTPError as exc:
        raise VaultError(f"cannot {what}: Vault at {addr} is unreachable ({type(exc).__name__}: {exc})") from exc


def _errors(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return f"HTTP {response.status_code}"
    return f"HTTP {response.status_code}" + (f": {'; '.join(str(e) for e in errors)}" if errors else "")


async def read_provider_credentials(settings: Settings, http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Read the providers secret from KV v2. Raises :class:`VaultError` on any failure."""
    vault = settings.vault
    location = f"{vault.kv_mount}/{vault.providers_path}"
    what = f"read provider credentials from '{location}' (KV v2)"
    response = await _call(settings, http, "GET", f"{vault.kv_mount}/data/{vault.providers_path}", what=what)
    addr = vault.addr.rstrip("/")
    if response.status_code == 404:
        raise VaultError(f"cannot {what}: the secret does not exist in Vault at {addr} ({_errors(response)})")
    if response.status_code == 403:
        raise VaultError(f"cannot {what}: Vault at {addr} denied the token ({_errors(response)})")
    if response.status_code != 200:
        raise VaultError(f"cannot {what}: Vault at {addr} answered {_errors(response)}")
    try:
        data = response.json()["data"]["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VaultError(f"cannot {what}: Vault at {addr} answered without a KV v2 'data.data' object") from exc
    if not isinstance(data, dict):
        raise VaultError(f"cannot {what}: Vault at {addr} answered without a KV v2 'data.data' object")
    credentials: dict[str, dict[str, Any]] = {}
    for provider, value in data.items():
        entry = value
        if isinstance(value, str):  # written with `bao kv put ... yookassa='{"shop_id": ...}'`
            try:
                entry = orjson.loads(value)
            except orjson.JSONDecodeError:
                entry = None
        if not isinstance(entry, dict):
            log.warning("provider_credentials_entry_ignored", provider=provider, reason="not a JSON object")
            continue
        credentials[str(provider)] = entry
    return credentials


async def load_provider_credentials(settings: Settings, http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Provider name → credentials, read once at start-up.

    Production: raises :class:`VaultError` (the service must not start) when the token is
    missing, Vault is unreachable, the token is denied or the secret does not exist.
    Development and test: logs a warning and returns ``{}`` instead.
    """
    try:
        credentials = await read_provider_credentials(settings, http)
    except VaultError as exc:
        if settings.is_production:
            raise
        log.warning("provider_credentials_unavailable", vault_addr=settings.vault.addr, reason=str(exc))
        return {}
    log.info(
        "provider_credentials_loaded",
        vault_addr=settings.vault.addr,
        providers=sorted(credentials),
        disabled=sorted(name for name, entry in credentials.items() if entry.get("enabled") is False),
    )
    return credentials


async def _transit(
    settings: Settings, http: httpx.AsyncClient, operation: str, key_name: str, body: dict[str, Any]
) -> dict[str, Any]:
    mount = settings.vault.transit_mount
    what = f"{operation} with Transit key '{mount}/{key_name}'"
    response = await _call(settings, http, "POST", f"{mount}/{operation}/{key_name}", json=body, what=what)
    if response.status_code != 200:
        raise VaultError(f"cannot {what}: Vault at {settings.vault.addr.rstrip('/')} answered {_errors(response)}")
    data = response.json().get("data")
    if not isinstance(data, dict):
        raise VaultError(f"cannot {what}: Vault answered without a 'data' object")
    return data


async def ensure_transit_key(settings: Settings, http: httpx.AsyncClient, key_name: str) -> None:
    """Create the Transit key (aes256-gcm96) if it does not exist; a no-op when it does."""
    mount = settings.vault.transit_mount
    what = f"create Transit key '{mount}/{key_name}'"
    response = await _call(settings, http, "POST", f"{mount}/keys/{key_name}", json={"type": "aes256-gcm96"}, what=what)
    if response.status_code not in (200, 204):
        raise VaultError(f"cannot {what}: Vault at {settings.vault.addr.rstrip('/')} answered {_errors(response)}")


async def encrypt(settings: Settings, http: httpx.AsyncClient, key_name: str, plaintext: bytes) -> str:
    """Encrypt with Transit; returns the ``vault:v<N>:...`` ciphertext to store.

    The key is created on first use (Vault's encrypt upserts it when the token may; otherwise
    it is created explicitly once the encrypt call reports it missing). Raises :class:`VaultError`.
    """
    body = {"plaintext": base64.b64encode(plaintext).decode("ascii")}
    try:
        data = await _transit(settings, http, "encrypt", key_name, body)
    except VaultError as exc:
        if "not found" not in str(exc):
            raise
        await ensure_transit_key(settings, http, key_name)
        data = await _transit(settings, http, "encrypt", key_name, body)
    ciphertext = data.get("ciphertext")
    if not isinstance(ciphertext, str):
        raise VaultError(f"Transit encrypt with key '{key_name}' returned no ciphertext")
    return ciphertext


async def decrypt(settings: Settings, http: httpx.AsyncClient, key_name: str, ciphertext: str) -> bytes:
    """Decrypt a ciphertext made by :func:`encrypt` with the same key. Raises :class:`VaultError`."""
    data = await _transit(settings, http, "decrypt", key_name, {"ciphertext": ciphertext})
    plaintext = data.get("plaintext")
    if not isinstance(plaintext, str):
        raise VaultError(f"Transit decrypt with key '{key_name}' returned no plaintext")
    try:
        return base64.b64decode(plaintext, validate=True)
    except binascii.Error as exc:
        raise VaultError(f"Transit decrypt with key '{key_name}' returned malformed base64") from exc
