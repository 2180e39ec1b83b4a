"""YooKassa HTTP client: Basic auth ``shopId:secretKey``, ``Idempotence-Key`` on every POST.

POSTs carrying the same Idempotence-Key are replayed by YooKassa for 24 h, so they are retried
(HTTP 500 there means "repeat with the same key"); reads are retried too.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from payment_service.providers._http import ProviderHTTP
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.settings import YooKassaSettings
from payment_service.providers.yookassa.schemas import YKError, YKPayment, YKRefund

PROVIDER = "yookassa"


class YooKassaApiError(Exception):
    """A non-2xx answer with YooKassa's error body; mapped by the adapter."""

    def __init__(self, status: int, error: YKError, operation: str) -> None:
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


class YooKassaClient:
    MAX_202_WAIT_MS = 5_000

    def __init__(
        self,
        settings: YooKassaSettings,
        *,
        shop_id: str,
        secret_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.http = ProviderHTTP(
            PROVIDER,
            settings,
            transport=transport,
            breaker=breaker,
            auth=httpx.BasicAuth(shop_id, secret_key),
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
            # 202: accepted, still processing; repeat with the same key after retry_after ms (as the SDK does)
            await asyncio.sleep(min(_retry_after_ms(response), self.MAX_202_WAIT_MS) / 1000)
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200:
            raise YooKassaApiError(response.status_code, YKError.model_validate(data or {}), operation)
        if not isinstance(data, dict):
            raise YooKassaApiError(response.status_code, YKError(description="not a JSON object"), operation)
        return data

    async def create_payment(self, body: dict[str, Any], *, key: str) -> YKPayment:
        return YKPayment.model_validate(await self._call("create", "POST", "/payments", body=body, key=key))

    async def get_payment(self, payment_id: str) -> YKPayment:
        return YKPayment.model_validate(await self._call("get", "GET", f"/payments/{payment_id}"))

    async def capture_payment(self, payment_id: str, body: dict[str, Any], *, key: str) -> YKPayment:
        return YKPayment.model_validate(
            await self._call("capture", "POST", f"/payments/{payment_id}/capture", body=body, key=key)
        )

    async def cancel_payment(self, payment_id: str, *, key: str) -> YKPayment:
        return YKPayment.model_validate(
            await self._call("cancel", "POST", f"/payments/{payment_id}/cancel", body={}, key=key)
        )

    async def create_refund(self, body: dict[str, Any], *, key: str) -> YKRefund:
        return YKRefund.model_validate(await self._call("refund", "POST", "/refunds", body=body, key=key))

    async def get_refund(self, refund_id: str) -> YKRefund:
        return YKRefund.model_validate(await self._call("get_refund", "GET", f"/refunds/{refund_id}"))
