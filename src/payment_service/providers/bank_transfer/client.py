"""Bank-transfer client: Bearer API key; ``Idempotency-Key`` on every POST (so POSTs are retried safely)."""

from __future__ import annotations

from typing import Any

import httpx

from payment_service.providers._json_api import JsonApiClient, JsonApiError
from payment_service.providers.bank_transfer.schemas import BTErrorBody, BTTransfer
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.payout_settings import BankTransferSettings

PROVIDER = "bank_transfer"


class BankTransferApiError(JsonApiError[BTErrorBody]):
    pass


class BankTransferClient(JsonApiClient):
    api_error = BankTransferApiError
    error_model = BTErrorBody

    def __init__(
        self,
        settings: BankTransferSettings,
        *,
        api_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(PROVIDER, settings, api_key=api_key, transport=transport, breaker=breaker)

    async def create_transfer(self, body: dict[str, Any], *, key: str) -> BTTransfer:
        return BTTransfer.model_validate(await self._call("payout_create", "POST", "/transfers", body=body, key=key))

    async def get_transfer(self, transfer_id: str) -> BTTransfer:
        return BTTransfer.model_validate(await self._call("payout_get", "GET", f"/transfers/{transfer_id}"))

    async def find_transfer(self, client_reference: str) -> BTTransfer | None:
        data = await self._call("payout_get", "GET", "/transfers", params={"client_reference": client_reference})
        items = data.get("items") or []
        return BTTransfer.model_validate(items[-1]) if items else None
