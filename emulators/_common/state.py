"""State every emulator keeps: config, received requests, the truth ledger, queued outcomes, idempotency."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from fastapi import Request

from emulators._common import magic
from emulators._common.webhooks import WebhookDispatcher

MAX_RECORDED = 20_000
"""Requests kept for inspection; the older half is dropped beyond it."""

OUTAGE_FAULTS = ("error_503", "error_500", "hang", "slow")
"""Faults a steady outage (``EmulatorConfig.fault_mode``) can inject: those :meth:`BaseState.apply_fault` implements."""


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
    fault_mode: str | None = None
    """A steady outage: every provider API call gets this fault (one of :data:`OUTAGE_FAULTS`) with
    probability ``fault_rate``, until it is set back to None. Queued outcomes are not consumed meanwhile."""
    fault_rate: float = 1.0
    """Share (0.0–1.0) of the API calls that get ``fault_mode``."""
    fault_seed: int = 0
    """Seed of the outage's random draws; they restart from it whenever a ``fault_*`` field is set."""


class EmulatedFault(Exception):
    """Raised by :meth:`BaseState.outage_guard`; each emulator's app renders it as its provider would."""

    def __init__(self, fault: str) -> None:
        super().__init__(fault)
        self.fault = fault


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
        self.fault_random = random.Random(self.config.fault_seed)
        self.outage_calls = 0
        """API calls that arrived while ``fault_mode`` was set."""
        self.outage_faults: Counter[str] = Counter()
        """Faults the outage injected, by mode."""

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.webhooks.reset()
        self.requests.clear()
        self.ledger.clear()
        self.forced.clear()
        self.idempotency.clear()
        self.config.fault_mode = None
        self.restart_outage()

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

    # -- steady outage -------------------------------------------------------------------------
    def restart_outage(self) -> None:
        """Restart the outage's draws from ``fault_seed`` and zero its counters."""
        self.fault_random = random.Random(self.config.fault_seed)
        self.outage_calls = 0
        self.outage_faults.clear()

    def outage_json(self) -> dict[str, Any]:
        return {
            "fault_mode": self.config.fault_mode,
            "fault_rate": self.config.fault_rate,
            "fault_seed": self.config.fault_seed,
            "calls": self.outage_calls,
            "faults": dict(self.outage_faults),
        }

    async def outage(self) -> str | None:
        """The steady outage's share of one API call: None (spared, or slowed and let through) or
        the fault to answer with (``error_503``/``error_500``; ``hang`` answers 500 after ``hang_seconds``)."""
        mode = self.config.fault_mode
        if mode is None:
            return None
        self.outage_calls += 1
        if self.fault_random.random() >= self.config.fault_rate:
            return None
        self.outage_faults[mode] += 1
        return await self.apply_fault(mode)

    async def outage_guard(self) -> None:
        """FastAPI dependency of every provider API router (after ``record``): raises
        :class:`EmulatedFault`, which the app renders in the provider's wire format."""
        fault = await self.outage()
        if fault is not None:
            raise EmulatedFault(fault)

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
