"""Adapters wired to in-process emulators (httpx.ASGITransport) with fast timeouts, plus a webhook sink."""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from emulators._common.state import BaseState, EmulatorConfig

from payment_service.providers.mobile.adapter import MobileProvider
from payment_service.providers.ports import ChargeRequest, PaymentMethod
from payment_service.providers.sber.adapter import SberProvider
from payment_service.providers.settings import MobileSettings, SberSettings, TBankSettings, YooKassaSettings
from payment_service.providers.tbank.adapter import TBankProvider
from payment_service.providers.yookassa.adapter import YooKassaProvider

FAST: dict[str, Any] = {
    "connect_timeout_seconds": 0.5,
    "read_timeout_seconds": 1.0,
    "total_timeout_seconds": 0.4,
    "max_attempts": 2,
    "backoff_initial_seconds": 0.005,
    "backoff_max_seconds": 0.01,
}

CREDENTIALS: dict[str, dict[str, str]] = {
    "yookassa": {"shop_id": "100500", "secret_key": "test_secret_key"},
    "tbank": {"terminal_key": "TestTerminalDEMO", "password": "test_password"},
    "sber": {"user_name": "store-api", "password": "store-password", "callback_secret": "test-callback-secret"},
    "mobile": {"api_key": "test_api_key", "webhook_secret": "test_webhook_secret"},
}
BASE_URLS = {
    "yookassa": "http://yookassa.emu/v3",
    "tbank": "http://tbank.emu/v2",
    "sber": "http://sber.emu/payment/rest",
    "mobile": "http://mobile.emu/v1",
}


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookSink:
    """An ASGI app standing in for our webhook endpoint; scripted answers, default ``200 OK``."""

    received: list[Received] = field(default_factory=list)
    answers: deque[tuple[int, bytes]] = field(default_factory=deque)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope.get("headers", [])}
        self.received.append(
            Received(scope["method"], scope["path"], scope.get("query_string", b"").decode(), headers, body)
        )
        status, payload = self.answers.popleft() if self.answers else (200, b"OK")
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": payload})


def settings_for(provider: str, **overrides: Any) -> Any:
    cls = {"yookassa": YooKassaSettings, "tbank": TBankSettings, "sber": SberSettings, "mobile": MobileSettings}[
        provider
    ]
    extra: dict[str, Any] = {"base_url": BASE_URLS[provider], **FAST}
    if provider == "yookassa":
        extra["webhook_ip_allowlist"] = ["127.0.0.1/32"]
    extra.update(overrides)
    return cls(**extra)


@dataclass
class Harness:
    provider: str
    app: Any
    state: BaseState
    adapter: Any
    sink: WebhookSink

    async def pay(self, payment_id: str, *, card_number: str | None = None, outcome: str | None = None) -> None:
        await self.state.complete_action(payment_id, card_number=card_number, outcome=outcome)

    async def flush(self) -> None:
        await self.state.webhooks.flush()

    def request(self, amount_minor: int = 49_900, **kw: Any) -> ChargeRequest:
        method = kw.pop("method", PaymentMethod.mobile if self.provider == "mobile" else PaymentMethod.bank_card)
        defaults: dict[str, Any] = {
            "currency": "RUB",
            "method": method,
            "description": "Game key: Example",
            "return_url": "https://store.example/return",
            "idempotency_key": str(uuid.uuid4()),
            "notification_url": "http://svc.test/webhooks/" + self.provider,
        }
        if method is PaymentMethod.mobile:
            defaults["payer_phone"] = "79161234567"
        defaults.update(kw)
        return ChargeRequest(amount_minor=amount_minor, **defaults)


def build(provider: str, **settings_overrides: Any) -> Harness:
    from emulators.mobile.app import create_app as mobile_app
    from emulators.sber.app import create_app as sber_app
    from emulators.tbank.app import create_app as tbank_app
    from emulators.yookassa.app import create_app as yookassa_app

    sink = WebhookSink()
    config = EmulatorConfig(
        public_base_url="http://" + BASE_URLS[provider].split("/")[2],
        webhook_url="http://svc.test/webhooks/" + provider,
        hang_seconds=3.0,
        slow_seconds=0.05,
        webhook_retry_delays=[0.005, 0.01, 0.02],
    )
    factory = {"yookassa": yookassa_app, "tbank": tbank_app, "sber": sber_app, "mobile": mobile_app}[provider]
    app = factory(config, webhook_transport=httpx.ASGITransport(app=sink))
    adapter_cls = {
        "yookassa": YooKassaProvider,
        "tbank": TBankProvider,
        "sber": SberProvider,
        "mobile": MobileProvider,
    }[provider]
    adapter = adapter_cls(
        settings_for(provider, **settings_overrides), CREDENTIALS[provider], transport=httpx.ASGITransport(app=app)
    )
    return Harness(provider, app, app.state.emulator, adapter, sink)
