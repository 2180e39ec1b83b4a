"""YooKassa Payouts client: Basic auth with the payout gateway's ``agentId`` and secret key;
``Idempotence-Key`` on every POST (so POSTs are retried safely with the same key); HTTP 202
"still processing" is repeated with the same key after ``retry_after`` ms, as the official SDK does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from payment_service.providers._http import ProviderHTTP
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.payout_settings import YooKassaPayoutsSettings
from payment_service.providers.yookassa_payouts.schemas import YPError, YPPayout

PROVIDER = "yookassa_payouts"


class YooKassaPayoutsApiError(Exception):
    """A non-200 answer with YooKassa's error body; mapped by the adapter."""

    def __init__(self, status: int, error: YPError, operation: str) -> None:
        super().__init__(f"{status} {error.code}: {error.description}")
        self.status = status
        self.error = error
        self.operation = operation


def _retry_after_ms(response: httpx.Response) -> int:
    try:
        value = response.json().get("retry_after", 1000)
        return int(value) if isinstance(value, int | float | str) else 1000
    except (ValueError, AttributeError):
        return 1000


class YooKassaPayoutsClient:
    MAX_202_WAIT_MS = 5_000

    def __init__(
        self,
        settings: YooKassaPayoutsSettings,
        *,
        agent_id: str,
        secret_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.http = ProviderHTTP(
            PROVIDER,
            settings,
            transport=transport,
            breaker=breaker,
            auth=httpx.BasicAuth(agent_id, secret_key),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(
        self, operation: str, method: str, path: str, *, body: dict[str, Any] | None = None, key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotence-Key": key} if key else {}
        content = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        for _ in range(max(1, self.http.settings.max_attempts)):
            response = await self.http.request(
                operation, method, path, mutating=method == "POST", idempotent=True, headers=headers, content=content
            )
            if response.status_code != 202:
                break
            await asyncio.sleep(min(_retry_after_ms(response), self.MAX_202_WAIT_MS) / 1000)
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200:
            raise YooKassaPayoutsApiError(response.status_code, YPError.model_validate(data or {}), operation)
        if not isinstance(data, dict):
            raise YooKassaPayoutsApiError(response.status_code, YPError(description="not a JSON object"), operation)
        return data

    async def create_payout(self, body: dict[str, Any], *, key: str) -> YPPayout:
        return YPPayout.model_validate(await self._call("payout_create", "POST", "/payouts", body=body, key=key))

    async def get_payout(self, payout_id: str) -> YPPayout:
        return YPPayout.model_validate(await self._call("payout_get", "GET", f"/payouts/{payout_id}"))
