"""YooKassa v3 routes on the real paths: /v3/payments, /v3/payments/{id}[/capture|/cancel], /v3/refunds."""

from __future__ import annotations

import base64
import binascii
import html
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from emulators._common import magic
from emulators._common.forms import form_params
from emulators.yookassa.state import YKError, YooKassaState, public

MAX_IDEMPOTENCE_KEY = 64  # UNCONFIRMED exact limit (providers-reference §1.2)


def error_response(exc: YKError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def fault_response(fault: str) -> Response:
    """The answer to an injected ``error_503`` (definitely not processed) or ``error_500`` (unknown)."""
    if fault == "error_503":
        return error_response(
            YKError(503, "internal_server_error", "Service temporarily unavailable, request not processed")
        )
    return error_response(
        YKError(500, "internal_server_error", "Internal server error, repeat the request with the same key")
    )


def build_router(state: YooKassaState) -> APIRouter:
    async def record(request: Request) -> None:
        await state.record(request)

    api = APIRouter(prefix="/v3", dependencies=[Depends(record), Depends(state.outage_guard)])

    def shop_of(request: Request) -> str:
        header = request.headers.get("authorization")
        if not header:
            raise YKError(401, "invalid_credentials", "Authorization header not found")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            raise YKError(401, "invalid_credentials", "Basic authentication failed")
        try:
            shop_id, _, secret = base64.b64decode(token).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise YKError(401, "invalid_credentials", "Basic authentication failed") from None
        if state.shops.get(shop_id) != secret:
            raise YKError(401, "invalid_credentials", "Basic authentication failed")
        return shop_id

    async def parse_json(request: Request, *, required: bool) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            if required:
                raise YKError(400, "invalid_request", "Request body is empty")
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise YKError(400, "invalid_request", "Request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise YKError(400, "invalid_request", "Request body must be a JSON object")
        return data

    async def idempotent(
        request: Request, *, required_body: bool, handler: Callable[[str, dict[str, Any]], Awaitable[Response]]
    ) -> Response:
        try:
            shop_id = shop_of(request)
            key = request.headers.get("idempotence-key")
            if key is None or not key.strip():
                raise YKError(400, "invalid_request", "Idempotence key is empty", "Idempotence-Key")
            if len(key) > MAX_IDEMPOTENCE_KEY:
                raise YKError(400, "invalid_request", "Idempotence key is too long", "Idempotence-Key")
            body = await parse_json(request, required=required_body)
            fingerprint = state.body_hash(
                (request.url.path + json.dumps(body, sort_keys=True, ensure_ascii=False)).encode()
            )
            stored = state.idem_get(shop_id, key)
            if stored is not None:
                if stored.body_hash != fingerprint:
                    raise YKError(400, "invalid_request", "Idempotence key duplicated", "Idempotence-Key")
                return JSONResponse(stored.body, status_code=stored.status)
            response = await handler(shop_id, body)
            if response.status_code < 500 and response.status_code != 202:
                state.idem_put(shop_id, key, fingerprint, response.status_code, json.loads(bytes(response.body)))
            return response
        except YKError as exc:
            return error_response(exc)

    @api.post("/payments")
    async def create_payment(request: Request) -> Response:
        async def handler(shop_id: str, body: dict[str, Any]) -> Response:
            amount_minor, _, _ = state.validate_create(body)
            planned = state.plan(amount_minor)
            fault = await state.apply_fault(planned)
            if fault is not None:
                return fault_response(fault)
            once = (shop_id, request.headers.get("idempotence-key", ""))
            if planned == "processing_202" and once in state.answered_202:
                planned = None
            if planned == "processing_202":
                state.answered_202.add(once)
                # "accepted, still processing": the client repeats with the same key after retry_after ms
                return JSONResponse(
                    {"type": "processing", "description": "Request accepted, repeat it later", "retry_after": 50},
                    status_code=202,
                )
            rec = state.create(shop_id, body, planned)
            if planned == "drop_after_charge":
                await state.complete_action(rec.obj["id"], card_number=None, outcome="success")
                state.idem_put(
                    shop_id,
                    request.headers["idempotence-key"],
                    state.body_hash((request.url.path + json.dumps(body, sort_keys=True, ensure_ascii=False)).encode()),
                    200,
                    public(rec.obj),
                )
                await state.drop()
            return JSONResponse(public(rec.obj))

        return await idempotent(request, required_body=True, handler=handler)

    @api.get("/payments/{payment_id}")
    async def get_payment(payment_id: str, request: Request) -> Response:
        try:
            return JSONResponse(public(state.get(shop_of(request), payment_id).obj))
        except YKError as exc:
            return error_response(exc)

    @api.get("/payments")
    async def list_payments(request: Request, status: str | None = None, limit: int = 10) -> Response:
        try:
            shop_id = shop_of(request)
        except YKError as exc:
            return error_response(exc)
        items = [public(r.obj) for r in state.payments.values() if r.shop_id == shop_id]
        if status:
            items = [i for i in items if i["status"] == status]
        return JSONResponse({"type": "list", "items": list(reversed(items))[: max(1, min(limit, 100))]})

    @api.post("/payments/{payment_id}/capture")
    async def capture(payment_id: str, request: Request) -> Response:
        async def handler(shop_id: str, body: dict[str, Any]) -> Response:
            return JSONResponse(state.capture(shop_id, payment_id, body))

        return await idempotent(request, required_body=False, handler=handler)

    @api.post("/payments/{payment_id}/cancel")
    async def cancel(payment_id: str, request: Request) -> Response:
        async def handler(shop_id: str, body: dict[str, Any]) -> Response:
            return JSONResponse(state.cancel(shop_id, payment_id))

        return await idempotent(request, required_body=False, handler=handler)

    @api.post("/refunds")
    async def create_refund(request: Request) -> Response:
        async def handler(shop_id: str, body: dict[str, Any]) -> Response:
            return JSONResponse(state.refund(shop_id, body))

        return await idempotent(request, required_body=True, handler=handler)

    @api.get("/refunds/{refund_id}")
    async def get_refund(refund_id: str, request: Request) -> Response:
        try:
            return JSONResponse(state.get_refund(shop_of(request), refund_id))
        except YKError as exc:
            return error_response(exc)

    @api.get("/refunds")
    async def list_refunds(request: Request, payment_id: str | None = None) -> Response:
        try:
            shop_id = shop_of(request)
        except YKError as exc:
            return error_response(exc)
        items = [
            r
            for r in state.refunds.values()
            if state.payments[r["payment_id"]].shop_id == shop_id
            and (payment_id is None or r["payment_id"] == payment_id)
        ]
        return JSONResponse({"type": "list", "items": items})

    return api


def checkout_router(state: YooKassaState) -> APIRouter:
    """The customer's side: payment page, 3-DS step, SBP "bank app"."""
    pages = APIRouter(tags=["customer pages"])

    def page(title: str, inner: str) -> HTMLResponse:
        return HTMLResponse(
            f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{inner}</body></html>"
        )

    @pages.get("/checkout/{payment_id}")
    async def checkout(payment_id: str) -> Response:
        rec = state.payments.get(payment_id)
        if rec is None:
            return page("Not found", "<p>No such payment.</p>")
        obj = rec.obj
        return page(
            "YooKassa emulator: pay",
            f"<p>{html.escape(str(obj.get('description', '')))} — {obj['amount']['value']} {obj['amount']['currency']}"
            f" ({html.escape(rec.method)}), status {obj['status']}</p>"
            f'<form method="post"><label>Card number <input name="card_number" value="{magic.DEFAULT_CARD}"></label>'
            '<button type="submit">Pay</button></form>'
            f'<form method="post" action="/checkout/{payment_id}/decline"><button>Refuse</button></form>',
        )

    @pages.post("/checkout/{payment_id}")
    async def submit(payment_id: str, request: Request) -> Response:
        card_number = (await form_params(request)).get("card_number") or magic.DEFAULT_CARD
        rec = state.payments.get(payment_id)
        if rec is None or rec.obj["status"] != "pending":
            return page("Not payable", "<p>This payment cannot be paid now.</p>")
        outcome = rec.planned or (magic.card_outcome(card_number) if rec.method == "bank_card" else "success")
        if outcome == "success_3ds":
            return page(
                "3-D Secure",
                f'<form method="post" action="/checkout/{payment_id}/3ds">'
                f'<input type="hidden" name="card_number" value="{html.escape(card_number)}">'
                f'<label>Password ({magic.THREE_DS_PASSWORD}) <input name="password"></label><button>Confirm</button></form>',
            )
        await state.complete_action(payment_id, card_number=card_number, outcome=None)
        return _back(rec.obj)

    @pages.post("/checkout/{payment_id}/3ds")
    async def three_ds(payment_id: str, request: Request) -> Response:
        form = await form_params(request)
        card_number, password = form.get("card_number", magic.DEFAULT_CARD), form.get("password", "")
        outcome = "success_3ds" if password == magic.THREE_DS_PASSWORD else "decline:3ds_failed"
        await state.complete_action(payment_id, card_number=card_number, outcome=outcome)
        return _back(state.payments[payment_id].obj)

    @pages.post("/checkout/{payment_id}/decline")
    async def refuse(payment_id: str) -> Response:
        await state.complete_action(payment_id, card_number=None, outcome="decline:expired")
        return _back(state.payments[payment_id].obj)

    def _back(obj: dict[str, Any]) -> Response:
        return_url = (obj.get("_return_url") or "").strip()
        if return_url:
            return RedirectResponse(return_url, status_code=302)
        return page("Done", f"<p>Payment {obj['id']} is {obj['status']}.</p>")

    return pages
