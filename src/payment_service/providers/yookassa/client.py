"""YooKassa HTTP client: Basic auth ``shopId:secretKey``, ``Idempotence-Key`` on every POST.

POSTs carrying the same Idempotence-Key are replayed by YooKassa for 24 h, so they are retried
(HTTP 500 there means "repeat with the same key"); reads are retried too.

``YooKassaStyleClient`` and ``YooKassaStyleApiError`` hold the part of the protocol that YooKassa
Payouts speaks too (``providers.yookassa_payouts.client`` builds on them): JSON bodies,
``Idempotence-Key``, HTTP 202 "still processing" repeated with the same key after ``retry_after``
ms (as the official SDK does), and YooKassa's error body.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import httpx
from pydantic import BaseModel

from payment_service.providers._http import ProviderHTTP
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.settings import ProviderSettings, YooKassaSettings
from payment_service.providers.yookassa.schemas import YKError, YKPayment, YKRefund

PROVIDER = "yookassa"


class _ErrorBody(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def description(self) -> str: ...


ErrorBodyT = TypeVar("ErrorBodyT", bound=_ErrorBody)


class YooKassaStyleApiError(Exception, Generic[ErrorBodyT]):
    """A non-2xx answer with YooKassa's error body; mapped by the adapter."""

    def __init__(self, status: int, error: ErrorBodyT, operation: str) -> None:
        super().__init__(f"{status} {error.code}: {error.description}")
        self.status = status
        self.error = error
        self.operation = operation


class YooKassaApiError(YooKassaStyleApiError[YKError]):
    """A non-2xx answer with YooKassa's error body; mapped by the adapter."""


def _retry_after_ms(response: httpx.Response) -> int:
    try:
        value = response.json().get("retry_after", 1000)
        return int(value) if isinstance(value, int | float | str) else 1000
    except (ValueError, AttributeError):
        return 1000


class YooKassaStyleClient:
    """Basic auth, JSON bodies, ``Idempotence-Key``, 202 repeats; subclasses name their error types."""

    MAX_202_WAIT_MS = 5_000
    api_error: ClassVar[type[YooKassaStyleApiError[Any]]]
    error_model: ClassVar[type[BaseModel]]

    def __init__(
        self,
        provider: str,
        settings: ProviderSettings,
        *,
        auth: httpx.Auth,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.http = ProviderHTTP(
            provider,
            settings,
            transport=transport,
            breaker=breaker,
            auth=auth,
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
            raise self.api_error(response.status_code, self.error_model.model_validate(data or {}), operation)
        if not isinstance(data, dict):
            raise self.api_error(response.status_code, self.error_model(description="not a JSON object"), operation)
        return data


class YooKassaClient(YooKassaStyleClient):
    api_error = YooKassaApiError
    error_model = YKError

    def __init__(
        self,
        settings: YooKassaSettings,
        *,
        shop_id: str,
        secret_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(
            PROVIDER, settings, auth=httpx.BasicAuth(shop_id, secret_key), transport=transport, breaker=breaker
        )

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
