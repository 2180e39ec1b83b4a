"""Aggregator API v1 routes: /v1/charges (+ /capture, /cancel, /refunds), Bearer API key, Idempotency-Key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from emulators._common import magic
from emulators.mobile import scenarios
from emulators.mobile.state import Charge, MCError, MobileState


def fault_response(fault: str) -> Response:
    """The answer to an injected ``error_503`` (nothing created) / ``error_500`` (unknown)."""
    exc = (
        MCError(503, "unavailable", "try later; the request was not processed")
        if fault == "error_503"
        else MCError(500, "internal", "internal error")
    )
    return JSONResponse(exc.body(), status_code=exc.status)


def build_router(state: MobileState) -> APIRouter:
    async def record(request: Request) -> None:
        await state.record(request)

    api = APIRouter(prefix="/v1", dependencies=[Depends(record), Depends(state.outage_guard)])

    def merchant_of(request: Request) -> str:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key not in state.merchants:
            raise MCError(401, "unauthorized", "invalid API key")
        return state.merchants[key][0]

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise MCError(400, "invalid_request", "body is not JSON") from None
        if not isinstance(data, dict):
            raise MCError(400, "invalid_request", "body must be an object")
        return data

    async def run(
        request: Request, fn: Callable[[str, dict[str, Any]], Awaitable[Response | dict[str, Any]]], *, idem: bool
    ) -> Response:
        try:
            merchant = merchant_of(request)
            body = await body_of(request) if request.method == "POST" else {}
            key = request.headers.get("idempotency-key")
            fingerprint = state.body_hash((request.url.path + json.dumps(body, sort_keys=True)).encode())
            if idem:
                if not key:
                    raise MCError(400, "invalid_request", "Idempotency-Key header is required")
                stored = state.idem_get(merchant, key)
                if stored is not None:
                    if stored.body_hash != fingerprint:
                        raise MCError(409, "idempotency_conflict", "Idempotency-Key reused with another body")
                    return JSONResponse(stored.body, status_code=stored.status)
            result = await fn(merchant, body)
            response = result if isinstance(result, Response) else JSONResponse(result)
            if idem and key and response.status_code < 500:
                state.idem_put(merchant, key, fingerprint, response.status_code, json.loads(bytes(response.body)))
            return response
        except MCError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    @api.post("/charges")
    async def create(request: Request) -> Response:
        async def fn(merchant: str, body: dict[str, Any]) -> Response | dict[str, Any]:
            amount = body.get("amount")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
                raise MCError(400, "invalid_request", "amount must be a positive integer of kopecks")
            if body.get("currency", "RUB") != "RUB":
                raise MCError(400, "invalid_request", "only RUB is supported")
            phone = str(body.get("phone", ""))
            if len(phone) != 11 or not phone.isdigit():
                raise MCError(400, "invalid_request", "phone must be 11 digits, E.164 without '+'")
            mcid = str(body.get("merchant_charge_id") or "")
            if not mcid:
                raise MCError(400, "invalid_request", "merchant_charge_id is required")
            if any(c.merchant_charge_id == mcid and c.merchant == merchant for c in state.charges.values()):
                raise MCError(409, "duplicate_charge", "merchant_charge_id already used")
            planned = state.plan(amount)
            fault = await state.apply_fault(planned)
            if fault is not None:
                return fault_response(fault)
            operator = scenarios.operator_of(phone)
            c = Charge(
                id=f"ch_{uuid.uuid4().hex[:24]}",
                merchant=merchant,
                merchant_charge_id=mcid,
                phone=phone,
                operator=operator,
                amount=amount,
                currency="RUB",
                capture=bool(body.get("capture", True)),
                description=str(body.get("description", ""))[:128],
                callback_url=body.get("callback_url"),
                planned=planned if planned and planned.startswith(("decline:", "success")) else None,
                webhook_mode=planned if magic.is_webhook_mode(planned) else None,
            )
            state.charges[c.id] = c
            if operator is None:
                state.fail(c, "unsupported_operator")
            elif amount < scenarios.MIN_AMOUNT or amount > scenarios.MAX_AMOUNT[operator]:
                state.fail(c, "limit_exceeded")
            elif planned == "drop_after_charge":
                await state.complete_action(c.id, card_number=None, outcome="success")
                key = request.headers.get("idempotency-key", "")
                fingerprint = state.body_hash((request.url.path + json.dumps(body, sort_keys=True)).encode())
                state.idem_put(merchant, key, fingerprint, 200, c.public())
                await state.drop()
            return c.public()

        return await run(request, fn, idem=True)

    @api.get("/charges/{charge_id}")
    async def get(charge_id: str, request: Request) -> Response:
        async def fn(merchant: str, body: dict[str, Any]) -> dict[str, Any]:
            return state.get(merchant, charge_id).public()

        return await run(request, fn, idem=False)

    @api.get("/charges")
    async def find(request: Request, merchant_charge_id: str) -> Response:
        async def fn(merchant: str, body: dict[str, Any]) -> dict[str, Any]:
            items = [
                c.public()
                for c in state.charges.values()
                if c.merchant == merchant and c.merchant_charge_id == merchant_charge_id
            ]
            return {"items": items}

        return await run(request, fn, idem=False)

    @api.post("/charges/{charge_id}/capture")
    async def capture(charge_id: str, request: Request) -> Response:
        async def fn(merchant: str, body: dict[str, Any]) -> dict[str, Any]:
            c = state.get(merchant, charge_id)
            state.capture(c, body.get("amount"))
            return c.public()

        return await run(request, fn, idem=True)

    @api.post("/charges/{charge_id}/cancel")
    async def cancel(charge_id: str, request: Request) -> Response:
        async def fn(merchant: str, body: dict[str, Any]) -> dict[str, Any]:
            c = state.get(merchant, charge_id)
            state.cancel(c)
            return c.public()

        return await run(request, fn, idem=True)

    @api.post("/charges/{charge_id}/refunds")
    async def refund(charge_id: str, request: Request) -> Response:
        async def fn(merchant: str, body: dict[str, Any]) -> dict[str, Any]:
            c = state.get(merchant, charge_id)
            amount = body.get("amount")
            if isinstance(amount, bool) or not isinstance(amount, int):
                raise MCError(400, "invalid_request", "amount must be an integer of kopecks")
            return state.refund(c, amount, str(body.get("merchant_refund_id", "")))

        return await run(request, fn, idem=True)

    return api


def pages_router(state: MobileState) -> APIRouter:
    pages = APIRouter(tags=["customer pages"])

    @pages.get("/sms/{charge_id}")
    async def sms(charge_id: str) -> Response:
        c = state.charges.get(charge_id)
        if c is None:
            return HTMLResponse("<h1>Not found</h1>", status_code=404)
        return HTMLResponse(
            f"<!doctype html><h1>SMS to {c.phone}</h1><p>Reply 1 to pay {c.amount} kop. ({c.operator})</p>"
            f'<form method="post" action="/_emulator/payments/{c.id}/pay"><button>Reply 1</button></form>'
        )

    return pages
