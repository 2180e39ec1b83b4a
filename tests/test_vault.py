"""Provider credentials (KV v2) and Transit against a real OpenBao dev server."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from payment_service.config import Environment, Settings
from payment_service.devstack import OpenBao, dev_provider_credentials, free_port
from payment_service.vault import VaultError, decrypt, encrypt, load_provider_credentials


@pytest.fixture
def vault_settings(settings: Settings) -> Settings:
    """The suite's settings with a secret path of this test's own (the OpenBao is shared)."""
    s = settings.model_copy(deep=True)
    s.vault.providers_path = f"payment-service-test/{uuid.uuid4().hex}/providers"
    return s


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def production(s: Settings) -> Settings:
    prod = s.model_copy(deep=True)
    prod.env = Environment.production
    return prod


class TestLoadProviderCredentials:
    async def test_returns_every_provider_entry_of_the_kv_v2_secret(
        self, openbao: OpenBao, vault_settings: Settings, http: httpx.AsyncClient
    ) -> None:
        seeded = dev_provider_credentials()
        openbao.put_kv(vault_settings.vault.providers_path, seeded)

        loaded = await load_provider_credentials(vault_settings, http)

        assert loaded == seeded
        assert loaded["qiwi"] == {"enabled": False}
        assert set(loaded["atol"]) == {"login", "password", "group_code", "inn"}

    async def test_parses_entries_written_as_json_strings(
        self, openbao: OpenBao, vault_settings: Settings, http: httpx.AsyncClient
    ) -> None:
        entry = {"terminal_key": "DEVTERMINAL", "password": uuid.uuid4().hex}
        openbao.put_kv(vault_settings.vault.providers_path, {"tbank": orjson.dumps(entry).decode(), "bad": 5})

        loaded = await load_provider_credentials(vault_settings, http)

        assert loaded == {"tbank": entry}

    async def test_never_logs_secret_values(
        self, openbao: OpenBao, vault_settings: Settings, http: httpx.AsyncClient
    ) -> None:
        seeded = dev_provider_credentials()
        openbao.put_kv(vault_settings.vault.providers_path, seeded)

        with capture_logs() as logs:
            await load_provider_credentials(vault_settings, http)

        rendered = repr(logs)
        assert "provider_credentials_loaded" in rendered
        assert seeded["yookassa"]["secret_key"] not in rendered
        assert seeded["sber"]["password"] not in rendered
        assert openbao.root_token not in rendered

    async def test_missing_secret_outside_production_is_a_warning_and_no_credentials(
        self, vault_settings: Settings, http: httpx.AsyncClient
    ) -> None:
        with capture_logs() as logs:
            loaded = await load_provider_credentials(vault_settings, http)

        assert loaded == {}
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["provider_credentials_unavailable"]

    async def test_unreachable_vault_in_production_is_a_start_up_error_naming_the_address(
        self, vault_settings: Settings, http: httpx.AsyncClient
    ) -> None:
        prod = production(vault_settings)
        prod.vault.addr = f"http://127.0.0.1:{free_port()}"
        prod.vault.timeout_seconds = 1.0

        with pytest.raises(VaultError) as raised:
            await load_provider_credentials(prod, http)

        assert prod.vault.addr in str(raised.value)
        assert "unreachable" in str(raised.value)

    async def test_missing_token_in_production_is_a_start_up_error(
        self, vault_settings: Settings, http: httpx.AsyncClient
    ) -> None:
        prod = production(vault_settings)
        prod.vault.token = None

        with pytest.raises(VaultError, match=re.escape(f"no Vault token configured for {prod.vault.addr}")):
            await load_provider_credentials(prod, http)

    async def test_missing_secret_in_production_is_a_start_up_error_naming_the_path(
        self, vault_settings: Settings, http: httpx.AsyncClient
    ) -> None:
        prod = production(vault_settings)

        with pytest.raises(VaultError) as raised:
            await load_provider_credentials(prod, http)

        message = str(raised.value)
        assert f"secret/{prod.vault.providers_path}" in message
        assert "does not exist" in message
        assert prod.vault.addr in message

    async def test_denied_token_in_production_is_a_start_up_error_without_the_token(
        self, vault_settings: Settings, http: httpx.AsyncClient
    ) -> None:
        prod = production(vault_settings)
        wrong = "wrong-" + uuid.uuid4().hex
        prod.vault.token = SecretStr(wrong)

        with pytest.raises(VaultError, match="denied") as raised:
            await load_provider_credentials(prod, http)

        assert wrong not in str(raised.value)


class TestTransit:
    async def test_round_trip_creates_the_key_on_first_use(
        self, openbao: OpenBao, settings: Settings, http: httpx.AsyncClient
    ) -> None:
        key = f"test-pii-{uuid.uuid4().hex[:8]}"
        secret = "Иванов Иван, счёт 40817810099910004312".encode()

        ciphertext = await encrypt(settings, http, key, secret)
        plaintext = await decrypt(settings, http, key, ciphertext)

        assert ciphertext.startswith("vault:v1:")
        assert secret.decode() not in ciphertext
        assert plaintext == secret
        keys = httpx.get(f"{openbao.addr}/v1/transit/keys/{key}", headers={"X-Vault-Token": openbao.root_token})
        assert keys.status_code == 200

    async def test_same_plaintext_encrypts_differently_each_time(
        self, settings: Settings, http: httpx.AsyncClient
    ) -> None:
        key = f"test-pii-{uuid.uuid4().hex[:8]}"

        first = await encrypt(settings, http, key, b"4276 1600 0000 0000")
        second = await encrypt(settings, http, key, b"4276 1600 0000 0000")

        assert first != second

    async def test_ciphertext_of_another_key_is_rejected(self, settings: Settings, http: httpx.AsyncClient) -> None:
        ciphertext = await encrypt(settings, http, f"test-a-{uuid.uuid4().hex[:8]}", b"payout details")
        other = f"test-b-{uuid.uuid4().hex[:8]}"
        await encrypt(settings, http, other, b"x")

        with pytest.raises(VaultError, match=re.escape(f"decrypt with Transit key 'transit/{other}'")):
            await decrypt(settings, http, other, ciphertext)
