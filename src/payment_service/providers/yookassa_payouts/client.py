"""YooKassa Payouts client: Basic auth with the payout gateway's ``agentId`` and secret key;
``Idempotence-Key`` on every POST (so POSTs are retried safely with the same key); HTTP 202
"still processing" is repeated with the same key after ``retry_after`` ms, as the official SDK does.
The protocol plumbing is YooKassa's (``providers.yookassa.client.YooKassaStyleClient``)."""

from __future__ import annotations

from typing import Any

import httpx

from payment_service.providers.breaker import CircuitBreaker
from payment_service.providers.payout_settings import YooKassaPayoutsSettings
from payment_service.providers.yookassa.client import YooKassaStyleApiError, YooKassaStyleClient
from payment_service.providers.yookassa_payouts.schemas import YPError, YPPayout

PROVIDER = "yookassa_payouts"


class YooKassaPayoutsApiError(YooKassaStyleApiError[YPError]):
    """A non-200 answer with YooKassa's error body; mapped by the adapter."""


class YooKassaPayoutsClient(YooKassaStyleClient):
    api_error = YooKassaPayoutsApiError
    error_model = YPError

    def __init__(
        self,
        settings: YooKassaPayoutsSettings,
        *,
        agent_id: str,
        secret_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(
            PROVIDER, settings, auth=httpx.BasicAuth(agent_id, secret_key), transport=transport, breaker=breaker
        )

    async def create_payout(self, body: dict[str, Any], *, key: str) -> YPPayout:
        return YPPayout.model_validate(await self._call("payout_create", "POST", "/payouts", body=body, key=key))

    async def get_payout(self, payout_id: str) -> YPPayout:
        return YPPayout.model_validate(await self._call("payout_get", "GET", f"/payouts/{payout_id}"))
