"""Aggregator client: Bearer API key; ``Idempotency-Key`` on every POST (so POSTs are retried safely)."""

from __future__ import annotations

from typing import Any

import httpx

from payment_service.providers._json_api import JsonApiClient, JsonApiError
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.mobile.schemas import MCCharge, MCErrorBody, MCRefund
from payment_service.providers.settings import MobileSettings

PROVIDER = "mobile"


class MobileApiError(JsonApiError[MCErrorBody]):
    pass


class MobileClient(JsonApiClient):
    api_error = MobileApiError
    error_model = MCErrorBody

    def __init__(
        self,
        settings: MobileSettings,
        *,
        api_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(PROVIDER, settings, api_key=api_key, transport=transport, breaker=breaker)

    async def create_charge(self, body: dict[str, Any], *, key: str) -> MCCharge:
        return MCCharge.model_validate(await self._call("create", "POST", "/charges", body=body, key=key))

    async def get_charge(self, charge_id: str) -> MCCharge:
        return MCCharge.model_validate(await self._call("get", "GET", f"/charges/{charge_id}"))

    async def find_charge(self, merchant_charge_id: str) -> MCCharge | None:
        data = await self._call("get", "GET", "/charges", params={"merchant_charge_id": merchant_charge_id})
        items = data.get("items") or []
        return MCCharge.model_validate(items[-1]) if items else None

    async def capture(self, charge_id: str, *, key: str) -> MCCharge:
        return MCCharge.model_validate(
            await self._call("capture", "POST", f"/charges/{charge_id}/capture", body={}, key=key)
        )

    async def cancel(self, charge_id: str, *, key: str) -> MCCharge:
        return MCCharge.model_validate(
            await self._call("void", "POST", f"/charges/{charge_id}/cancel", body={}, key=key)
        )

    async def refund(self, charge_id: str, amount: int, *, key: str) -> MCRefund:
        body = {"amount": amount, "merchant_refund_id": key}
        return MCRefund.model_validate(
            await self._call("refund", "POST", f"/charges/{charge_id}/refunds", body=body, key=key)
        )
