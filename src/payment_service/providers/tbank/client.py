"""T-Bank client: JSON POST to /v2/{Method}, every request signed with ``Token`` (§2.2).

Token = SHA-256 hex of the values of root-level scalar params plus ``Password``, sorted by key,
concatenated; booleans as ``true``/``false``; nested objects (DATA, Receipt) excluded.
Init/Confirm/Cancel are not idempotent on T-Bank's side: they are retried only when nothing was sent.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx

from payment_service.providers._http import ProviderHTTP
from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.settings import TBankSettings
from payment_service.providers.tbank.schemas import TBCheckOrder, TBResponse

PROVIDER = "tbank"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def make_token(params: dict[str, Any], password: str) -> str:
    pairs = {k: v for k, v in params.items() if k != "Token" and v is not None and not isinstance(v, dict | list)}
    pairs["Password"] = password
    return hashlib.sha256("".join(_scalar(pairs[k]) for k in sorted(pairs)).encode("utf-8")).hexdigest()


class TBankApiError(Exception):
    def __init__(self, response: TBResponse, operation: str) -> None:
        super().__init__(f"{response.ErrorCode}: {response.Message}")
        self.response = response
        self.operation = operation


class TBankClient:
    def __init__(
        self,
        settings: TBankSettings,
        *,
        terminal_key: str,
        password: str,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.terminal_key = terminal_key
        self._password = password
        self.http = ProviderHTTP(PROVIDER, settings, transport=transport, breaker=breaker)

    async def aclose(self) -> None:
        await self.http.aclose()

    def sign(self, params: dict[str, Any]) -> dict[str, Any]:
        body = {"TerminalKey": self.terminal_key, **params}
        body["Token"] = make_token(body, self._password)
        return body

    def verify(self, params: dict[str, Any]) -> bool:
        return hmac.compare_digest(str(params.get("Token", "")), make_token(params, self._password))

    async def _call(self, method: str, params: dict[str, Any], *, mutating: bool) -> dict[str, Any]:
        response = await self.http.request(
            method, "POST", f"/{method}", mutating=mutating, idempotent=not mutating, json=self.sign(params)
        )
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise TBankApiError(TBResponse(Success=False, ErrorCode=f"http_{response.status_code}"), method)
        return data

    async def _checked(self, method: str, params: dict[str, Any], *, mutating: bool) -> TBResponse:
        resp = TBResponse.model_validate(await self._call(method, params, mutating=mutating))
        if not resp.Success or resp.ErrorCode != "0":
            raise TBankApiError(resp, method)
        return resp

    async def init(self, params: dict[str, Any]) -> TBResponse:
        return await self._checked("Init", params, mutating=True)

    async def get_qr(self, payment_id: str) -> TBResponse:
        return await self._checked("GetQr", {"PaymentId": payment_id, "DataType": "PAYLOAD"}, mutating=False)

    async def get_state(self, payment_id: str) -> TBResponse:
        return await self._checked("GetState", {"PaymentId": payment_id}, mutating=False)

    async def check_order(self, order_id: str) -> TBCheckOrder:
        data = await self._call("CheckOrder", {"OrderId": order_id}, mutating=False)
        resp = TBCheckOrder.model_validate(data)
        if not resp.Success:
            raise TBankApiError(resp, "CheckOrder")
        return resp

    async def confirm(self, payment_id: str, amount: int | None) -> TBResponse:
        params: dict[str, Any] = {"PaymentId": payment_id}
        if amount is not None:
            params["Amount"] = amount
        return await self._checked("Confirm", params, mutating=True)

    async def cancel(self, payment_id: str, amount: int | None, external_request_id: str | None = None) -> TBResponse:
        params: dict[str, Any] = {"PaymentId": payment_id}
        if amount is not None:
            params["Amount"] = amount
        if external_request_id:
            params["ExternalRequestId"] = external_request_id
        return await self._checked("Cancel", params, mutating=True)
