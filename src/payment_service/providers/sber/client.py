"""Sber client: form-encoded POST to ``<base>/<method>.do`` with ``userName``/``password`` (legacy RBS).

HTTP 200 even for errors (``errorCode`` != "0"). register.do is safe to repeat because
``orderNumber`` (our attempt id) is unique per merchant: a repeat answers errorCode 1 and the
adapter then looks the order up by number. Status reads are retried; deposit/reverse/refund are not.
"""

from __future__ import annotations

from typing import Any

import httpx

from payment_service.providers._http import ProviderHTTP
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.sber.schemas import SberOrderStatus, SberRegistered, SberResult
from payment_service.providers.settings import SberSettings

PROVIDER = "sber"


class SberApiError(Exception):
    def __init__(self, code: str, message: str, operation: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.operation = operation


class SberClient:
    def __init__(
        self,
        settings: SberSettings,
        *,
        user_name: str,
        password: str,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._auth = {"userName": user_name, "password": password}
        self.http = ProviderHTTP(PROVIDER, settings, transport=transport, breaker=breaker)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, params: dict[str, Any], *, mutating: bool, idempotent: bool) -> dict[str, Any]:
        form = {k: str(v) for k, v in {**self._auth, **params}.items() if v is not None}
        response = await self.http.request(
            method, "POST", f"/{method}.do", mutating=mutating, idempotent=idempotent, data=form
        )
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise SberApiError(f"http_{response.status_code}", "not a JSON object", method)
        err = SberResult.model_validate(data)
        if err.errorCode not in (None, "", "0"):
            raise SberApiError(err.errorCode, err.errorMessage or "", method)
        return data

    async def register(self, params: dict[str, Any], *, two_stage: bool) -> SberRegistered:
        method = "registerPreAuth" if two_stage else "register"
        return SberRegistered.model_validate(await self._call(method, params, mutating=True, idempotent=True))

    async def status(self, *, order_id: str | None = None, order_number: str | None = None) -> SberOrderStatus:
        params = {"orderId": order_id} if order_id else {"orderNumber": order_number}
        data = await self._call("getOrderStatusExtended", params, mutating=False, idempotent=True)
        return SberOrderStatus.model_validate(data)

    async def deposit(self, order_id: str, amount: int) -> None:
        await self._call("deposit", {"orderId": order_id, "amount": amount}, mutating=True, idempotent=False)

    async def reverse(self, order_id: str) -> None:
        await self._call("reverse", {"orderId": order_id}, mutating=True, idempotent=False)

    async def refund(self, order_id: str, amount: int) -> None:
        await self._call("refund", {"orderId": order_id, "amount": amount}, mutating=True, idempotent=False)
