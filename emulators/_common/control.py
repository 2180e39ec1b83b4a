"""The ``/_emulator`` control router every emulator mounts.

POST /_emulator/reset                       forget everything (payments, ledger, requests, webhooks)
POST /_emulator/config                      change EmulatorConfig fields (webhook_url, hang_seconds, ...)
POST /_emulator/next-outcome                {"outcome": "...", "count": 1}: queue outcomes for the next payments
GET  /_emulator/requests                    requests received (Authorization header removed)
GET  /_emulator/ledger                      the truth ledger: what was really held/charged/refunded
GET  /_emulator/objects                     every payment/refund as stored
GET  /_emulator/webhooks                    webhook deliveries with their attempts
POST /_emulator/webhooks/flush              release held webhooks, wait for deliveries to finish
POST /_emulator/payments/{id}/pay           the customer completes the action: {"card_number"?, "outcome"?}
POST /_emulator/payments/{id}/expire        the customer never paid / the hold expired
POST /_emulator/payments/{id}/webhook       send the payment's current-state webhook again
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fastapi import APIRouter, Body, HTTPException

from emulators._common import magic
from emulators._common.state import BaseState

VALID_OUTCOMES = {
    "success",
    "success_3ds",
    *(f"decline:{r}" for r in magic.DECLINE_REASONS),
    *magic.FAULTS,
    *magic.WEBHOOK_MODES,
}


def base_control_router(state: BaseState, valid_outcomes: Collection[str]) -> APIRouter:
    """The control endpoints every emulator has: reset, config, queued outcomes, inspection."""
    r = APIRouter(prefix="/_emulator", tags=["emulator control"])

    @r.post("/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return {"ok": True}

    @r.post("/config")
    async def config(changes: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        for k, v in changes.items():
            if not hasattr(state.config, k):
                raise HTTPException(400, f"unknown config field {k}")
            setattr(state.config, k, v)
        state.webhooks.retry_delays = state.config.webhook_retry_delays
        return {"ok": True}

    @r.post("/next-outcome")
    async def next_outcome(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        outcome = str(body.get("outcome", ""))
        if outcome not in valid_outcomes:
            raise HTTPException(400, f"unknown outcome {outcome!r}; one of {sorted(valid_outcomes)}")
        state.queue_outcome(outcome, int(body.get("count", 1)))
        return {"queued": list(state.forced)}

    @r.get("/requests")
    async def requests() -> list[dict[str, Any]]:
        return state.requests

    @r.get("/ledger")
    async def ledger() -> list[dict[str, Any]]:
        return state.ledger_json()

    @r.get("/objects")
    async def objects() -> dict[str, Any]:
        return state.objects()

    @r.get("/webhooks")
    async def webhooks() -> list[dict[str, Any]]:
        return [d.as_json() for d in state.webhooks.deliveries]

    @r.post("/webhooks/flush")
    async def flush() -> dict[str, Any]:
        await state.webhooks.flush()
        return {"ok": True}

    return r


def control_router(state: BaseState) -> APIRouter:
    """The payment emulators' control endpoints: the base ones plus the customer's actions."""
    r = base_control_router(state, VALID_OUTCOMES)

    @r.post("/payments/{payment_id}/pay")
    async def pay(payment_id: str, body: dict[str, Any] | None = Body(None)) -> dict[str, Any]:  # noqa: B008
        body = body or {}
        outcome = body.get("outcome")
        if outcome is not None and outcome not in VALID_OUTCOMES:
            raise HTTPException(400, f"unknown outcome {outcome!r}")
        try:
            return await state.complete_action(payment_id, card_number=body.get("card_number"), outcome=outcome)
        except KeyError as exc:
            raise HTTPException(404, "no such payment") from exc
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from exc

    @r.post("/payments/{payment_id}/expire")
    async def expire(payment_id: str) -> dict[str, Any]:
        try:
            return await state.expire(payment_id)
        except KeyError as exc:
            raise HTTPException(404, "no such payment") from exc
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from exc

    @r.post("/payments/{payment_id}/webhook")
    async def webhook(payment_id: str) -> dict[str, Any]:
        try:
            await state.fire_webhook(payment_id)
        except KeyError as exc:
            raise HTTPException(404, "no such payment") from exc
        return {"ok": True}

    return r
