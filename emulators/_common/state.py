"""State every emulator keeps: config, received requests, the truth ledger, queued outcomes, idempotency."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from fastapi import Request

from emulators._common import magic
from emulators._common.webhooks import WebhookDispatcher

MAX_RECORDED = 20_000
"""Requests kept for inspection; the older half is dropped beyond it."""


@dataclass
class EmulatorConfig:
    public_base_url: str = "http://127.0.0.1:8000"
    """Base of confirmation pages put into redirect URLs."""
    webhook_url: str | None = None
    """Where webhooks go when the request carries no per-payment URL."""
    hang_seconds: float = 30.0
    slow_seconds: float = 1.0
    webhook_retry_delays: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.4, 0.8])
    fee_basis_points: int = 280
    """Provider fee reported back (YooKassa income_amount), 2.8 % by default."""
    idempotency_ttl_seconds: float = 24 * 3600


@dataclass
class LedgerEntry:
    """What the emulated provider really did with money (for reconciliation tests)."""

    seq: int
    kind: str  # hold, charge, capture, release, refund
    payment_id: str
    amount_minor: int
    currency: str
    reference: str
    at: float


@dataclass
class StoredResponse:
    body_hash: str
    status: int
    body: Any
    at: float


class BaseState:
    provider = "base"

    def __init__(
        self, config: EmulatorConfig | None = None, *, webhook_transport: httpx.AsyncBaseTransport | None = None
    ):
        self.config = config or EmulatorConfig()
        self.webhooks = WebhookDispatcher(retry_delays=self.config.webhook_retry_delays, transport=webhook_transport)
        self.requests: list[dict[str, Any]] = []
        self.ledger: list[LedgerEntry] = []
        self.forced: deque[str] = deque()
        self.idempotency: dict[tuple[str, str], StoredResponse] = {}
        self.lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.webhooks.reset()
        self.requests.clear()
        self.ledger.clear()
        self.forced.clear()
        self.idempotency.clear()

    # -- requests ----------------------------------------------------------------------------
    async def record(self, request: Request) -> None:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"authorization"}}
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": str(request.url.query),
                "headers": headers,
                "body": body.decode(errors="replace"),
                "at": time.time(),
            }
        )
        if len(self.requests) > MAX_RECORDED:  # long load runs: keep memory bounded
            del self.requests[: MAX_RECORDED // 2]

    # -- outcomes ----------------------------------------------------------------------------
    def queue_outcome(self, outcome: str, count: int = 1) -> None:
        for _ in range(count):
            self.forced.append(outcome)

    def plan(self, amount_minor: int) -> str | None:
        """Outcome planned for a new payment: a queued one, else the amount's magic value."""
        if self.forced:
            return self.forced.popleft()
        return magic.amount_outcome(amount_minor)

    async def apply_fault(self, planned: str | None) -> str | None:
        """Sleep for hang/slow; return the fault the caller must still answer (error_503/500) or None."""
        if planned == "hang":
            await asyncio.sleep(self.config.hang_seconds)
            return "error_500"
        if planned == "slow":
            await asyncio.sleep(self.config.slow_seconds)
            return None
        if planned in ("error_503", "error_500"):
            return planned
        return None

    async def drop(self) -> None:
        """'Charge then drop the response': the work is done, the answer never comes."""
        await asyncio.sleep(self.config.hang_seconds)

    # -- ledger ------------------------------------------------------------------------------
    def book(self, kind: str, payment_id: str, amount_minor: int, currency: str, reference: str = "") -> None:
        self.ledger.append(
            LedgerEntry(
                len(self.ledger) + 1, kind, payment_id, amount_minor, currency, reference or payment_id, time.time()
            )
        )

    def ledger_json(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.ledger]

    # -- idempotency -------------------------------------------------------------------------
    @staticmethod
    def body_hash(body: bytes) -> str:
        return hashlib.sha256(body).hexdigest()

    def idem_get(self, scope: str, key: str) -> StoredResponse | None:
        found = self.idempotency.get((scope, key))
        if found and time.time() - found.at > self.config.idempotency_ttl_seconds:
            del self.idempotency[(scope, key)]
            return None
        return found

    def idem_put(self, scope: str, key: str, body_hash: str, status: int, body: Any) -> None:
        self.idempotency[(scope, key)] = StoredResponse(body_hash, status, body, time.time())

    # -- provider hooks (overridden) -----------------------------------------------------------
    async def complete_action(self, payment_id: str, *, card_number: str | None, outcome: str | None) -> dict[str, Any]:
        raise NotImplementedError

    async def fire_webhook(self, payment_id: str) -> None:
        raise NotImplementedError

    async def expire(self, payment_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def objects(self) -> dict[str, Any]:
        return {}
