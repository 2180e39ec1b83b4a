"""T-Bank EACQ v2 routes: POST /v2/{Init,GetState,Confirm,Cancel,CheckOrder,GetQr}, JSON, Token-signed."""

from __future__ import annotations

import hmac
import html
import json
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from emulators._common import magic
from emulators._common.forms import form_params
from emulators.tbank.state import TBankState, TBError, TBPayment
from emulators.tbank.webhooks import token


def fault_response(fault: str) -> Response:
    """The answer to an injected ``error_503`` / ``error_500``: the gateway's bare HTTP error, nothing done."""
    if fault == "error_503":
        return PlainTextResponse("Service Unavailable", status_code=503)
    return PlainTextResponse("Internal Server Error", status_code=500)


def build_router(state: TBankState) -> APIRouter:
    async def record(request: Request) -> None:
        await state.record(request)

    api = APIRouter(prefix="/v2", dependencies=[Depends(record), Depends(state.outage_guard)])

    def fail(exc: TBError, params: dict[str, Any]) -> JSONResponse:
        body = {
            "Success": False,
            "ErrorCode": exc.code,
            "Message": exc.message,
            "Details": exc.details,
            "TerminalKey": params.get("TerminalKey"),
        }
        for k in ("OrderId", "PaymentId"):
            if k in params:
                body[k] = str(params[k])
        return JSONResponse(body)

    async def authenticated(request: Request) -> tuple[str, dict[str, Any]]:
        try:
            params = json.loads(await request.body() or b"{}")
        except ValueError:
            raise TBError("9999", "Неверный формат запроса") from None
        if not isinstance(params, dict):
            raise TBError("9999", "Неверный формат запроса")
        terminal = params.get("TerminalKey")
        if not isinstance(terminal, str) or terminal not in state.terminals:
            raise TBError("205", "Терминал не найден")
        expected = token(params, state.terminals[terminal])
        if not hmac.compare_digest(str(params.get("Token", "")), expected):
            raise TBError("204", "Неверный токен. Проверьте пару TerminalKey/SecretKey.")
        return terminal, params

    async def handle(request: Request, fn: Callable[[str, dict[str, Any]], Any]) -> Response:
        params: dict[str, Any] = {}
        try:
            terminal, params = await authenticated(request)
            result = fn(terminal, params)
            if hasattr(result, "__await__"):
                result = await result
            if isinstance(result, Response):
                return result
            return JSONResponse({"Success": True, "ErrorCode": "0", "TerminalKey": terminal, **result})
        except TBError as exc:
            return fail(exc, params)

    def payment_of(terminal: str, params: dict[str, Any]) -> TBPayment:
        if params.get("PaymentId") in (None, ""):
            raise TBError("201", "Поле PaymentId не должно быть пустым")
        return state.get(terminal, params["PaymentId"])

    def int_amount(value: Any, *, required: bool) -> int | None:
        if value is None:
            if required:
                raise TBError("201", "Поле Amount не должно быть пустым")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TBError("1", "Amount must be an integer number of kopecks")
        return value

    @api.post("/Init")
    async def init(request: Request) -> Response:
        async def fn(terminal: str, params: dict[str, Any]) -> Any:
            amount = int_amount(params.get("Amount"), required=True)
            assert amount is not None
            order_id = str(params.get("OrderId") or "")
            if not order_id:
                raise TBError("201", "Поле OrderId не должно быть пустым")
            if len(order_id) > 36:
                raise TBError("1", "OrderId is too long")
            data = params.get("DATA") or {}
            if amount < 100 or (data.get("QR") == "true" and amount < 1000):
                raise TBError("251", "Сумма меньше минимальной")
            pay_type = params.get("PayType", "O")
            if pay_type not in ("O", "T"):
                raise TBError("1", "PayType must be O or T")
            if data.get("QR") == "true" and pay_type == "T":
                raise TBError("3001", "СБП недоступна для двухстадийных платежей")
            receipt = params.get("Receipt")
            if receipt is not None:
                items = receipt.get("Items") or []
                if not items or sum(int(i.get("Amount", 0)) for i in items) != amount:
                    raise TBError("1", "Сумма позиций чека не равна сумме платежа")
                if not (receipt.get("Email") or receipt.get("Phone")):
                    raise TBError("1", "Receipt needs Email or Phone")
            planned = state.plan(amount)
            fault = await state.apply_fault(planned)
            if fault is not None:
                return fault_response(fault)
            p = TBPayment(
                payment_id=state.new_id(),
                terminal=terminal,
                order_id=order_id,
                amount=amount,
                pay_type=pay_type,
                planned=planned if planned and planned.startswith(("decline:", "success")) else None,
                webhook_mode=planned if magic.is_webhook_mode(planned) else None,
                notification_url=params.get("NotificationURL"),
                success_url=params.get("SuccessURL"),
                description=params.get("Description"),
                data={str(k): str(v) for k, v in data.items()},
            )
            state.payments[p.payment_id] = p
            base = state.config.public_base_url.rstrip("/")
            body = {
                "Status": "NEW",
                "PaymentId": p.payment_id,
                "OrderId": order_id,
                "Amount": amount,
                "PaymentURL": f"{base}/new/{p.payment_id}",
            }
            if planned == "drop_after_charge":
                await state.complete_action(p.payment_id, card_number=None, outcome="success")
                await state.drop()
            return body

        return await handle(request, fn)

    @api.post("/GetState")
    async def get_state(request: Request) -> Response:
        def fn(terminal: str, params: dict[str, Any]) -> dict[str, Any]:
            p = payment_of(terminal, params)
            out = {"Status": p.status, "PaymentId": p.payment_id, "OrderId": p.order_id, "Amount": p.amount}
            if p.message:
                out["Message"] = p.message
            if p.pan:
                out["Params"] = [{"Key": "Pan", "Value": p.pan}, {"Key": "ExpDate", "Value": p.exp_date or ""}]
            return out

        return await handle(request, fn)

    @api.post("/Confirm")
    async def confirm(request: Request) -> Response:
        def fn(terminal: str, params: dict[str, Any]) -> dict[str, Any]:
            p = payment_of(terminal, params)
            state.confirm(p, int_amount(params.get("Amount"), required=False))
            return {"Status": p.status, "PaymentId": p.payment_id, "OrderId": p.order_id}

        return await handle(request, fn)

    @api.post("/Cancel")
    async def cancel(request: Request) -> Response:
        def fn(terminal: str, params: dict[str, Any]) -> dict[str, Any]:
            p = payment_of(terminal, params)
            ext = params.get("ExternalRequestId")
            if ext and (p.payment_id, str(ext)) in state.cancel_requests:
                return state.cancel_requests[(p.payment_id, str(ext))]  # a repeat of the same refund/reversal
            out = do_cancel(p, params)
            if ext:
                state.cancel_requests[(p.payment_id, str(ext))] = out
            return out

        def do_cancel(p: TBPayment, params: dict[str, Any]) -> dict[str, Any]:
            original = state.cancel(p, int_amount(params.get("Amount"), required=False))
            new = p.confirmed - p.refunded if p.status in ("REFUNDED", "PARTIAL_REFUNDED") else p.amount
            if p.status == "CANCELED":
                new = 0
            return {
                "Status": p.status,
                "PaymentId": p.payment_id,
                "OrderId": p.order_id,
                "OriginalAmount": original,
                "NewAmount": new,
            }

        return await handle(request, fn)

    @api.post("/CheckOrder")
    async def check_order(request: Request) -> Response:
        def fn(terminal: str, params: dict[str, Any]) -> dict[str, Any]:
            order_id = str(params.get("OrderId") or "")
            found = [p for p in state.payments.values() if p.terminal == terminal and p.order_id == order_id]
            if not found:
                raise TBError("7", "Заказ не найден")
            return {
                "OrderId": order_id,
                "Payments": [
                    {
                        "PaymentId": p.payment_id,
                        "Amount": p.amount,
                        "Status": p.status,
                        "Success": p.status not in ("REJECTED", "AUTH_FAIL"),
                        "ErrorCode": p.error_code,
                        "Message": p.message,
                    }
                    for p in found
                ],
            }

        return await handle(request, fn)

    @api.post("/GetQr")
    async def get_qr(request: Request) -> Response:
        def fn(terminal: str, params: dict[str, Any]) -> dict[str, Any]:
            p = payment_of(terminal, params)
            if p.data.get("QR") != "true":
                raise TBError("3001", "Оплата через СБП недоступна для этого платежа")
            qrc = uuid.uuid5(uuid.NAMESPACE_URL, p.payment_id).hex.upper()
            link = f"https://qr.nspk.ru/{qrc}?type=02&bank=100000000004&sum={p.amount}&cur=RUB&crc=1A2B"
            return {"PaymentId": p.payment_id, "OrderId": p.order_id, "Data": link, "RequestKey": str(uuid.uuid4())}

        return await handle(request, fn)

    return api


def pages_router(state: TBankState) -> APIRouter:
    pages = APIRouter(tags=["customer pages"])

    def page(title: str, inner: str) -> HTMLResponse:
        return HTMLResponse(
            f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{inner}</body></html>"
        )

    @pages.get("/new/{payment_id}")
    async def form(payment_id: str) -> Response:
        p = state.payments.get(payment_id)
        if p is None:
            return page("Not found", "")
        if p.status == "NEW":
            p.status = "FORM_SHOWED"
        return page(
            "T-Bank emulator: pay",
            f"<p>{html.escape(p.description or '')} — {p.amount} kop.</p>"
            f'<form method="post"><input name="card_number" value="2201382000000013"><button>Pay</button></form>',
        )

    @pages.post("/new/{payment_id}")
    async def submit(payment_id: str, request: Request) -> Response:
        form_ = await form_params(request)
        card = form_.get("card_number") or magic.DEFAULT_CARD
        p = state.payments.get(payment_id)
        if p is None or p.status not in ("NEW", "FORM_SHOWED"):
            return page("Not payable", "")
        if (p.planned or magic.card_outcome(card)) == "success_3ds" and "password" not in form_:
            return page(
                "3-D Secure",
                f'<form method="post"><input type="hidden" name="card_number" value="{html.escape(card)}">'
                f'<input name="password"><button>Confirm</button></form>',
            )
        outcome = None
        if "password" in form_:
            outcome = "success_3ds" if form_["password"] == magic.THREE_DS_PASSWORD else "decline:3ds_failed"
        await state.complete_action(payment_id, card_number=card, outcome=outcome)
        if p.success_url and p.status in ("AUTHORIZED", "CONFIRMED"):
            return RedirectResponse(p.success_url, status_code=302)
        return page("Done", f"<p>{p.status}</p>")

    return pages
