"""Sber legacy RBS routes: /payment/rest/<method>.do, form-encoded (GET or POST), userName/password."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from emulators._common import magic
from emulators._common.forms import form_params
from emulators.sber.state import Order, SberError, SberState


def status_json(o: Order) -> dict[str, Any]:
    body: dict[str, Any] = {
        "errorCode": "0",
        "errorMessage": "Успешно",
        "orderNumber": o.order_number,
        "orderStatus": o.status,
        "actionCode": o.action_code,
        "actionCodeDescription": o.action_text,
        "amount": o.amount,
        "currency": o.currency,
        "date": o.created_ms,
        "orderDescription": o.description,
        "merchantOrderParams": [],
        "attributes": [{"name": "mdOrder", "value": o.order_id}],
        "paymentAmountInfo": {
            "paymentState": o.payment_state,
            "approvedAmount": o.approved,
            "depositedAmount": o.deposited,
            "refundedAmount": o.refunded,
        },
    }
    if o.masked_pan:
        body["cardAuthInfo"] = {
            "maskedPan": o.masked_pan,
            "expiration": o.expiration,
            "cardholderName": "CARD HOLDER",
            "approvalCode": "123456",
            "paymentSystem": o.payment_system,
        }
        body["bankInfo"] = {"bankName": "EMULATED BANK", "bankCountryCode": "RU", "bankCountryName": "Россия"}
    return body


def fault_response(fault: str) -> Response:
    """The answer to an injected ``error_503`` / ``error_500``: a bare HTTP error, nothing done."""
    if fault == "error_503":
        return PlainTextResponse("Service Unavailable", status_code=503)
    return PlainTextResponse("Internal Server Error", status_code=500)


def build_router(state: SberState) -> APIRouter:
    async def record(request: Request) -> None:
        await state.record(request)

    api = APIRouter(prefix="/payment/rest", dependencies=[Depends(record), Depends(state.outage_guard)])

    async def handle(
        request: Request, fn: Callable[[str, dict[str, str]], Awaitable[Response | dict[str, Any]]]
    ) -> Response:
        params = await form_params(request)
        try:
            user = params.get("userName", "")
            if user not in state.merchants or state.merchants[user][0] != params.get("password"):
                raise SberError("5", "Доступ запрещён")
            result = await fn(user, params)
            return result if isinstance(result, Response) else JSONResponse(result)
        except SberError as exc:
            return JSONResponse({"errorCode": exc.code, "errorMessage": exc.message})

    def amount_of(params: dict[str, str], *, required: bool) -> int:
        raw = params.get("amount")
        if raw is None or raw == "":
            if required:
                raise SberError("4", "Не указана сумма")
            return 0
        if not raw.isdigit():
            raise SberError("5", "Неверная сумма")
        return int(raw)

    async def register(user: str, params: dict[str, str], *, two_stage: bool) -> Response | dict[str, Any]:
        for name in ("orderNumber", "returnUrl"):
            if not params.get(name):
                raise SberError("4", f"Не указан параметр {name}")
        amount = amount_of(params, required=True)
        if amount <= 0:
            raise SberError("5", "Неверная сумма")
        if params.get("currency", "643") != "643":
            raise SberError("3", "Неизвестная валюта")
        if any(o.order_number == params["orderNumber"] and o.merchant == user for o in state.orders.values()):
            raise SberError("1", "Заказ с таким номером уже обработан")
        planned = state.plan(amount)
        fault = await state.apply_fault(planned)
        if fault is not None:
            return fault_response(fault)
        o = state.new_order(user, params, two_stage=two_stage, planned=planned)
        base = state.config.public_base_url.rstrip("/")
        if planned == "drop_after_charge":
            await state.complete_action(o.order_id, card_number=None, outcome="success")
            await state.drop()
        return {
            "orderId": o.order_id,
            "formUrl": f"{base}/payment/merchants/emulator/payment_ru.html?mdOrder={o.order_id}",
        }

    def route(path: str, fn: Callable[[str, dict[str, str]], Awaitable[Response | dict[str, Any]]]) -> None:
        async def endpoint(request: Request) -> Response:
            return await handle(request, fn)

        api.add_api_route(path, endpoint, methods=["GET", "POST"], name=path)

    async def do_register(user: str, params: dict[str, str]) -> Response | dict[str, Any]:
        return await register(user, params, two_stage=False)

    async def do_register_pre_auth(user: str, params: dict[str, str]) -> Response | dict[str, Any]:
        return await register(user, params, two_stage=True)

    async def do_status(user: str, params: dict[str, str]) -> dict[str, Any]:
        return status_json(state.find(user, params))

    async def do_deposit(user: str, params: dict[str, str]) -> dict[str, Any]:
        state.deposit(state.find(user, params), amount_of(params, required=False))
        return {"errorCode": "0", "errorMessage": "Успешно"}

    async def do_reverse(user: str, params: dict[str, str]) -> dict[str, Any]:
        state.reverse(state.find(user, params))
        return {"errorCode": "0", "errorMessage": "Успешно"}

    async def do_refund(user: str, params: dict[str, str]) -> dict[str, Any]:
        state.refund(state.find(user, params), amount_of(params, required=True))
        return {"errorCode": "0", "errorMessage": "Успешно"}

    async def do_decline(user: str, params: dict[str, str]) -> dict[str, Any]:
        state.decline(state.find(user, params))
        return {"errorCode": "0", "errorMessage": "Успешно"}

    route("/register.do", do_register)
    route("/registerPreAuth.do", do_register_pre_auth)
    route("/getOrderStatusExtended.do", do_status)
    route("/deposit.do", do_deposit)
    route("/reverse.do", do_reverse)
    route("/refund.do", do_refund)
    route("/decline.do", do_decline)
    return api


def pages_router(state: SberState) -> APIRouter:
    pages = APIRouter(tags=["customer pages"])

    @pages.get("/payment/merchants/emulator/payment_ru.html")
    async def form(mdOrder: str) -> Response:
        o = state.orders.get(mdOrder)
        if o is None:
            return HTMLResponse("<h1>Not found</h1>", status_code=404)
        return HTMLResponse(
            f"<!doctype html><h1>Sber emulator: pay</h1><p>{o.amount} kop.</p>"
            f'<form method="post"><input name="card_number" value="4111111111111111">'
            f'<input name="password" placeholder="3-DS password"><button>Pay</button></form>'
        )

    @pages.post("/payment/merchants/emulator/payment_ru.html")
    async def submit(mdOrder: str, request: Request) -> Response:
        form_ = await form_params(request)
        o = state.orders.get(mdOrder)
        if o is None or o.status not in (0, 5):
            return HTMLResponse("<h1>Not payable</h1>", status_code=409)
        card = form_.get("card_number") or "4111111111111111"
        outcome = None
        if (o.planned or magic.card_outcome(card)) == "success_3ds":
            outcome = "success_3ds" if form_.get("password") == magic.THREE_DS_PASSWORD else "decline:3ds_failed"
        await state.complete_action(mdOrder, card_number=card, outcome=outcome)
        return RedirectResponse(o.return_url, status_code=302)

    return pages
