"""QIWI adapter: registered only when ``providers.qiwi.enabled`` is set, and even then refuses every call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payment_service.providers.ports import (
    Capability,
    ChargeRequest,
    PaymentMethod,
    PaymentRef,
    ProviderEvent,
    ProviderResult,
    RefundResult,
)
from payment_service.providers.qiwi.client import PROVIDER, REASON, QiwiClient
from payment_service.providers.settings import QiwiSettings


class QiwiProvider:
    name = PROVIDER
    reason = REASON
    capabilities: frozenset[Capability] = frozenset()
    methods: frozenset[PaymentMethod] = frozenset()

    def __init__(self, settings: QiwiSettings, credentials: Mapping[str, Any] | None = None, **_: Any) -> None:
        self.settings = settings
        self.client = QiwiClient()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def authorize(self, request: ChargeRequest) -> ProviderResult:
        self.client.refuse("create")

    async def capture(self, ref: PaymentRef, *, amount_minor: int | None = None, currency: str) -> ProviderResult:
        self.client.refuse("capture")

    async def void(self, ref: PaymentRef) -> ProviderResult:
        self.client.refuse("void")

    async def refund(self, ref: PaymentRef, *, amount_minor: int, currency: str, idempotency_key: str) -> RefundResult:
        self.client.refuse("refund")

    async def get_status(self, ref: PaymentRef) -> ProviderResult:
        self.client.refuse("get")

    async def parse_webhook(
        self, body: bytes, headers: Mapping[str, str], *, remote_addr: str | None = None, query: str = ""
    ) -> ProviderEvent:
        self.client.refuse("webhook")
