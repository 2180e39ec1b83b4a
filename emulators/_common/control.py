"""The ``/_emulator`` control router every emulator mounts.

POST /_emulator/reset                       forget everything (payments, ledger, requests, webhooks), end an outage
POST /_emulator/config                      change EmulatorConfig fields (webhook_url, hang_seconds, ...,
                                            fault_mode/fault_rate/fault_seed: the steady outage switch)
GET  /_emulator/outage                      the outage's settings, API calls seen and faults injected
POST /_emulator/next-outcome                {"outcome": "...", "count": 1}: queue outcomes for the next payments
DELETE /_emulator/next-outcome              withdraw every queued outcome
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

from collections.abc import Callable, Collection
from typing import Any

from fastapi import APIRouter, Body, FastAPI, HTTPException, Request
from fastapi.responses import Response

from emulators._common import magic
from emulators._common.state import OUTAGE_FAULTS, BaseState, EmulatedFault

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
            check_outage_field(k, v)
        for k, v in changes.items():
            setattr(state.config, k, float(v) if k == "fault_rate" else v)
        state.webhooks.retry_delays = state.config.webhook_retry_delays
        if any(k.startswith("fault_") for k in changes):
            state.restart_outage()
        return {"ok": True, "outage": state.outage_json()}

    @r.get("/outage")
    async def outage() -> dict[str, Any]:
        return state.outage_json()

    @r.post("/next-outcome")
    async def next_outcome(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        outcome = str(body.get("outcome", ""))
        if outcome not in valid_outcomes:
            raise HTTPException(400, f"unknown outcome {outcome!r}; one of {sorted(valid_outcomes)}")
        state.queue_outcome(outcome, int(body.get("count", 1)))
        return {"queued": list(state.forced)}

    @r.delete("/next-outcome")
    async def clear_outcomes() -> dict[str, Any]:
        withdrawn = list(state.forced)
        state.forced.clear()
        return {"withdrawn": withdrawn, "queued": []}

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


def check_outage_field(name: str, value: Any) -> None:
    """400 for an outage setting the emulator cannot honour (the other config fields are taken as given)."""
    if name == "fault_mode" and value is not None and value not in OUTAGE_FAULTS:
        raise HTTPException(400, f"unknown fault_mode {value!r}; one of {[None, *OUTAGE_FAULTS]}")
    if name == "fault_rate" and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0
    ):
        raise HTTPException(400, "fault_rate must be a number from 0.0 to 1.0")
    if name == "fault_seed" and (isinstance(value, bool) or not isinstance(value, int)):
        raise HTTPException(400, "fault_seed must be an integer")


def install_fault_handler(app: FastAPI, render: Callable[[str], Response]) -> None:
    """Answer an :class:`EmulatedFault` (the steady outage) with ``render(fault)``: the provider's own
    503/500 body, the same one its create call answers for a queued ``error_503``/``error_500``."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EmulatedFault)
        return render(exc.fault)

    app.add_exception_handler(EmulatedFault, handler)


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
