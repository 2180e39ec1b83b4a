"""Bank-transfer API v1 routes (Bearer API key, ``Idempotency-Key``) and the ``/_emulator`` control router.

POST /v1/transfers, GET /v1/transfers/{id}, GET /v1/transfers?client_reference=…

Control: POST /_emulator/reset | config | next-outcome; POST /_emulator/transfers/{id}/settle
{"outcome"?}; POST /_emulator/transfers/settle-all; POST /_emulator/transfers/{id}/webhook;
GET /_emulator/requests | ledger | objects | webhooks; POST /_emulator/webhooks/flush.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from emulators._common.control import base_control_router
from emulators.bank_transfer import scenarios
from emulators.bank_transfer.state import BankState, BTError

MAX_KEY = 64


def fault_response(fault: str) -> Response:
    """The answer to an injected ``error_503`` (nothing done) / ``error_500`` (unknown)."""
    exc = (
        BTError(503, "unavailable", "try later; the request was not processed")
        if fault == "error_503"
        else BTError(500, "internal", "internal error")
    )
    return JSONResponse(exc.body(), status_code=exc.status)


def build_router(state: BankState) -> APIRouter:
    async def record(request: Request) -> None:
        await state.record(request)

    api = APIRouter(prefix="/v1", dependencies=[Depends(record), Depends(state.outage_guard)])

    def merchant_of(request: Request) -> str:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key not in state.merchants:
            raise BTError(401, "unauthorized", "invalid API key")
        return state.merchants[key][0]

    async def run(request: Request, fn: Callable[[str], Awaitable[Response | dict[str, Any]]]) -> Response:
        try:
            result = await fn(merchant_of(request))
            return result if isinstance(result, Response) else JSONResponse(result)
        except BTError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    @api.post("/transfers")
    async def create(request: Request) -> Response:
        async def fn(merchant: str) -> Response | dict[str, Any]:
            key = request.headers.get("idempotency-key", "")
            if not key.strip() or len(key) > MAX_KEY:
                raise BTError(400, "invalid_request", f"Idempotency-Key header is required (1-{MAX_KEY} characters)")
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise BTError(400, "invalid_request", "body is not JSON") from None
            if not isinstance(body, dict):
                raise BTError(400, "invalid_request", "body must be an object")
            fingerprint = state.body_hash(json.dumps(body, sort_keys=True).encode())
            stored = state.idem_get(merchant, key)
            if stored is not None:
                if stored.body_hash != fingerprint:
                    raise BTError(409, "idempotency_conflict", "Idempotency-Key reused with another body")
                return JSONResponse(stored.body, status_code=stored.status)
            amount, _ = state.validate(body)
            planned = state.plan(amount)
            fault = await state.apply_fault(planned)
            if fault is not None:
                return fault_response(fault)
            t = state.create(merchant, body, planned)
            if state.config.settle_seconds == 0:
                state.settle(t.id)
            answer = t.public()
            state.idem_put(merchant, key, fingerprint, 200, answer)
            state.schedule_settle(t)
            if planned == "drop_after_charge":
                await state.drop()
            return answer

        return await run(request, fn)

    @api.get("/transfers/{transfer_id}")
    async def get(transfer_id: str, request: Request) -> Response:
        async def fn(merchant: str) -> dict[str, Any]:
            return state.get(merchant, transfer_id).public()

        return await run(request, fn)

    @api.get("/transfers")
    async def find(request: Request, client_reference: str) -> Response:
        async def fn(merchant: str) -> dict[str, Any]:
            items = [
                t.public()
                for t in state.transfers.values()
                if t.merchant == merchant and t.client_reference == client_reference
            ]
            return {"items": items}

        return await run(request, fn)

    return api


def control_router(state: BankState) -> APIRouter:
    r = base_control_router(state, scenarios.OUTCOMES)

    @r.post("/transfers/settle-all")
    async def settle_all() -> dict[str, Any]:
        done = [state.settle(tid) for tid, t in list(state.transfers.items()) if t.status == "processing"]
        return {"settled": [d["id"] for d in done]}

    @r.post("/transfers/{transfer_id}/settle")
    async def settle(transfer_id: str, body: dict[str, Any] | None = Body(None)) -> dict[str, Any]:  # noqa: B008
        outcome = (body or {}).get("outcome")
        if outcome is not None and outcome != "success" and not str(outcome).startswith("reject:"):
            raise HTTPException(400, f"unknown outcome {outcome!r}")
        try:
            return state.settle(transfer_id, outcome)
        except KeyError as exc:
            raise HTTPException(404, "no such transfer") from exc
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from exc

    @r.post("/transfers/{transfer_id}/webhook")
    async def webhook(transfer_id: str) -> dict[str, Any]:
        try:
            await state.fire_webhook(transfer_id)
        except KeyError as exc:
            raise HTTPException(404, "no such transfer") from exc
        return {"ok": True}

    return r
