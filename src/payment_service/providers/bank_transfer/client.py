"""Bank-transfer client: Bearer API key; ``Idempotency-Key`` on every POST (so POSTs are retried safely)."""

from __future__ import annotations

from typing import Any

import httpx

from payment_service.providers._http import ProviderHTTP
from payment_service.providers.bank_transfer.schemas import BTErrorBody, BTTransfer
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.payout_settings import BankTransferSettings

PROVIDER = "bank_transfer"


class BankTransferApiError(Exception):
    def __init__(self, status: int, error: BTErrorBody, operation: str) -> None:
        super().__init__(f"{status} {error.code}: {error.message}")
        self.status = status
        self.error = error
        self.operation = operation


class BankTransferClient:
    def __init__(
        self,
        settings: BankTransferSettings,
        *,
        api_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.http = ProviderHTTP(
            PROVIDER, settings, transport=transport, breaker=breaker, headers={"Authorization": f"Bearer {api_key}"}
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        key: str | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        response = await self.http.request(
            operation,
            method,
            path,
            mutating=method == "POST",
            idempotent=True,
            headers=headers,
            json=body,
            params=params,
        )
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict):
            err = data.get("error") if isinstance(data, dict) else None
            raise BankTransferApiError(response.status_code, BTErrorBody.model_validate(err or {}), operation)
        return data

    async def create_transfer(self, body: dict[str, Any], *, key: str) -> BTTransfer:
        return BTTransfer.model_validate(await self._call("payout_create", "POST", "/transfers", body=body, key=key))

    async def get_transfer(self, transfer_id: str) -> BTTransfer:
        return BTTransfer.model_validate(await self._call("payout_get", "GET", f"/transfers/{transfer_id}"))

    async def find_transfer(self, client_reference: str) -> BTTransfer | None:
        data = await self._call("payout_get", "GET", "/transfers", params={"client_reference": client_reference})
        items = data.get("items") or []
        return BTTransfer.model_validate(items[-1]) if items else None
