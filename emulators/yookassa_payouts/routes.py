"""YooKassa Payouts v3 routes on the real paths (/v3/payouts, /v3/payouts/{id}, /v3/sbp_banks) and the
``/_emulator`` control router of this emulator.

Control endpoints:

POST /_emulator/reset                        forget payouts, tokens, requests, webhooks; refill the balance
POST /_emulator/config                       change PayoutsConfig fields (webhook_url, settle_seconds, ...)
POST /_emulator/next-outcome                 {"outcome": "...", "count": 1}: queue outcomes for the next payouts
POST /_emulator/payout-tokens                {"card_number"}: what the payout widget returns (token + card mask)
GET|POST /_emulator/balance                  the gateway's payout balance ({"balance_minor": N} to set it)
POST /_emulator/payouts/{id}/settle          {"outcome"?}: resolve a pending payout now
POST /_emulator/payouts/settle-all           resolve every pending payout (as planned)
POST /_emulator/payouts/{id}/webhook         send the current-state notification again
GET  /_emulator/requests | ledger | objects | webhooks;  POST /_emulator/webhooks/flush
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from emulators._common.control import base_control_router
from emulators.yookassa_payouts import scenarios
from emulators.yookassa_payouts.state import PayoutsState, YPError, public

MAX_IDEMPOTENCE_KEY = 64  # UNCONFIRMED exact limit (providers-reference §1.2)


def error_response(exc: YPError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def fault_response(fault: str) -> Response:
    """The answer to an injected ``error_503`` (definitely not processed) or ``error_500`` (unknown)."""
    if fault == "error_503":
        return error_response(
            YPError(503, "internal_server_error", "Service temporarily unavailable, request not processed")
        )
    return error_response(
        YPError(500, "internal_server_error", "Internal server error, repeat the request with the same key")
    )


def build_router(state: PayoutsState) -> APIRouter:
    async def record(request: Request) -> None:
        await state.record(request)

    api = APIRouter(prefix="/v3", dependencies=[Depends(record), Depends(state.outage_guard)])

    def agent_of(request: Request) -> str:
        header = request.headers.get("authorization")
        if not header:
            raise YPError(401, "invalid_credentials", "Authorization header not found")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            raise YPError(401, "invalid_credentials", "Basic authentication failed")
        try:
            agent_id, _, secret = base64.b64decode(token).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise YPError(401, "invalid_credentials", "Basic authentication failed") from None
        if state.agents.get(agent_id) != secret:
            raise YPError(401, "invalid_credentials", "Basic authentication failed")
        return agent_id

    @api.post("/payouts")
    async def create_payout(request: Request) -> Response:
        try:
            agent_id = agent_of(request)
            key = request.headers.get("idempotence-key")
            if key is None or not key.strip():
                raise YPError(400, "invalid_request", "Idempotence key is empty", "Idempotence-Key")
            if len(key) > MAX_IDEMPOTENCE_KEY:
                raise YPError(400, "invalid_request", "Idempotence key is too long", "Idempotence-Key")
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                raise YPError(400, "invalid_request", "Request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise YPError(400, "invalid_request", "Request body must be a JSON object")
            fingerprint = state.body_hash(json.dumps(body, sort_keys=True, ensure_ascii=False).encode())
            stored = state.idem_get(agent_id, key)
            if stored is not None:
                if stored.body_hash != fingerprint:
                    raise YPError(400, "invalid_request", "Idempotence key duplicated", "Idempotence-Key")
                return JSONResponse(stored.body, status_code=stored.status)
            amount_minor, _, _ = state.validate_create(body)
            planned = state.plan(amount_minor)
            fault = await state.apply_fault(planned)
            if fault is not None:
                return fault_response(fault)
            if planned == "processing_202":
                if (agent_id, key) not in state.answered_202:
                    state.answered_202.add((agent_id, key))
                    return JSONResponse(
                        {"type": "processing", "description": "Request accepted, repeat it later", "retry_after": 50},
                        status_code=202,
                    )
                planned = None
            rec = state.create(agent_id, body, planned)
            if state.config.settle_seconds == 0 and rec.obj["status"] == "pending":
                state.settle(rec.obj["id"])
            answer = public(rec.obj)
            state.idem_put(agent_id, key, fingerprint, 200, answer)
            state.schedule_settle(rec)
            if planned == "drop_after_charge":
                await state.drop()  # created (and reserved) — the answer never comes
            return JSONResponse(answer)
        except YPError as exc:
            return error_response(exc)

    @api.get("/payouts/{payout_id}")
    async def get_payout(payout_id: str, request: Request) -> Response:
        try:
            return JSONResponse(public(state.get(agent_of(request), payout_id).obj))
        except YPError as exc:
            return error_response(exc)

    @api.get("/payouts")
    async def list_payouts(request: Request, status: str | None = None, limit: int = 10) -> Response:
        try:
            agent_id = agent_of(request)
        except YPError as exc:
            return error_response(exc)
        items = [public(r.obj) for r in state.payouts.values() if r.agent_id == agent_id]
        if status:
            items = [i for i in items if i["status"] == status]
        meta = {k[len("metadata.") :]: v for k, v in request.query_params.items() if k.startswith("metadata.")}
        if meta:
            items = [i for i in items if all(str((i.get("metadata") or {}).get(k)) == v for k, v in meta.items())]
        return JSONResponse({"type": "list", "items": list(reversed(items))[: max(1, min(limit, 100))]})

    @api.get("/sbp_banks")
    async def sbp_banks(request: Request) -> Response:
        try:
            agent_of(request)
        except YPError as exc:
            return error_response(exc)
        return JSONResponse({"type": "list", "items": scenarios.SBP_BANKS})

    return api


def control_router(state: PayoutsState) -> APIRouter:
    r = base_control_router(state, scenarios.OUTCOMES)

    @r.post("/payout-tokens")
    async def payout_token(body: dict[str, Any] = Body(...)) -> dict[str, str]:  # noqa: B008
        try:
            return state.mint_token(str(body.get("card_number", "")))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc

    @r.get("/balance")
    async def balance() -> dict[str, int]:
        return {"balance_minor": state.balance_minor}

    @r.post("/balance")
    async def set_balance(body: dict[str, Any] = Body(...)) -> dict[str, int]:  # noqa: B008
        state.balance_minor = int(body["balance_minor"])
        return {"balance_minor": state.balance_minor}

    @r.post("/payouts/settle-all")
    async def settle_all() -> dict[str, Any]:
        done = [state.settle(pid) for pid, rec in list(state.payouts.items()) if rec.obj["status"] == "pending"]
        return {"settled": [d["id"] for d in done]}

    @r.post("/payouts/{payout_id}/settle")
    async def settle(payout_id: str, body: dict[str, Any] | None = Body(None)) -> dict[str, Any]:  # noqa: B008
        outcome = (body or {}).get("outcome")
        if outcome is not None and outcome != "success" and not str(outcome).startswith("cancel:"):
            raise HTTPException(400, f"unknown outcome {outcome!r}")
        try:
            return state.settle(payout_id, outcome)
        except KeyError as exc:
            raise HTTPException(404, "no such payout") from exc
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from exc

    @r.post("/payouts/{payout_id}/webhook")
    async def webhook(payout_id: str) -> dict[str, Any]:
        try:
            await state.fire_webhook(payout_id)
        except KeyError as exc:
            raise HTTPException(404, "no such payout") from exc
        return {"ok": True}

    return r
