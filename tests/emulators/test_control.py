"""The /_emulator control surface, shared by every emulator."""

from __future__ import annotations

import uuid

import httpx
import pytest
from emulators.mobile.app import create_app as mobile_app
from emulators.sber.app import create_app as sber_app
from emulators.tbank.app import create_app as tbank_app
from emulators.tbank.webhooks import token


def tbank_client() -> tuple[httpx.AsyncClient, object]:
    app = tbank_app()
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tb"), app


def signed(params: dict[str, object], password: str = "test_password") -> dict[str, object]:  # noqa: S107
    body = {"TerminalKey": "TestTerminalDEMO", **params}
    body["Token"] = token(body, password)
    return body


async def init(c: httpx.AsyncClient, amount: int = 10_000) -> dict[str, object]:
    r = await c.post("/v2/Init", json=signed({"Amount": amount, "OrderId": str(uuid.uuid4())}))
    return r.json()  # type: ignore[no-any-return]


async def test_next_outcome_overrides_the_card() -> None:
    c, _ = tbank_client()
    await c.post("/_emulator/next-outcome", json={"outcome": "decline:insufficient_funds"})
    created = await init(c)

    await c.post(f"/_emulator/payments/{created['PaymentId']}/pay", json={"card_number": "5555555555554444"})
    state = (await c.post("/v2/GetState", json=signed({"PaymentId": created["PaymentId"]}))).json()

    assert state["Status"] == "REJECTED"


async def test_unknown_outcome_is_refused() -> None:
    c, _ = tbank_client()

    r = await c.post("/_emulator/next-outcome", json={"outcome": "maybe"})

    assert r.status_code == 400


async def test_requests_are_listed_without_credentials_and_reset_clears() -> None:
    c, _ = tbank_client()
    created = await init(c)
    await c.post(f"/_emulator/payments/{created['PaymentId']}/pay", json={})

    listed = (await c.get("/_emulator/requests")).json()
    ledger = (await c.get("/_emulator/ledger")).json()
    await c.post("/_emulator/reset")

    assert listed[0]["path"] == "/v2/Init"
    assert [e["kind"] for e in ledger] == ["charge"]
    assert (await c.get("/_emulator/ledger")).json() == []
    assert (await c.get("/_emulator/objects")).json() == {"payments": {}}


async def test_expire_and_refire_webhook() -> None:
    c, app = tbank_client()
    app.state.emulator.config.webhook_url = None  # type: ignore[attr-defined]
    created = await init(c)

    expired = (await c.post(f"/_emulator/payments/{created['PaymentId']}/expire")).json()
    refire = await c.post(f"/_emulator/payments/{created['PaymentId']}/webhook")
    missing = await c.post("/_emulator/payments/nope/pay", json={})

    assert expired["status"] == "DEADLINE_EXPIRED"
    assert refire.status_code == 200
    assert missing.status_code == 404


class TestTBankWire:
    async def test_wrong_token_is_204(self) -> None:
        c, _ = tbank_client()

        r = await c.post("/v2/Init", json=signed({"Amount": 100, "OrderId": "1"}, password="wrong"))

        assert r.status_code == 200
        assert r.json()["Success"] is False
        assert r.json()["ErrorCode"] == "204"

    async def test_unknown_terminal_is_205(self) -> None:
        c, _ = tbank_client()

        r = await c.post("/v2/GetState", json={"TerminalKey": "Nope", "PaymentId": "1", "Token": "x"})

        assert r.json()["ErrorCode"] == "205"

    async def test_payment_id_is_a_string_in_responses(self) -> None:
        c, _ = tbank_client()

        created = await init(c)

        assert isinstance(created["PaymentId"], str)
        assert created["Status"] == "NEW"
        assert created["ErrorCode"] == "0"

    async def test_receipt_must_sum_to_amount(self) -> None:
        c, _ = tbank_client()
        receipt = {
            "Email": "a@b.c",
            "Taxation": "osn",
            "Items": [{"Name": "x", "Price": 50, "Quantity": 1, "Amount": 50, "Tax": "vat22"}],
        }

        r = await c.post("/v2/Init", json=signed({"Amount": 100, "OrderId": "1", "Receipt": receipt}))

        assert r.json()["Success"] is False


class TestSberWire:
    @pytest.mark.parametrize("method", ["GET", "POST"])
    async def test_form_or_query(self, method: str) -> None:
        params = {
            "userName": "store-api",
            "password": "store-password",
            "orderNumber": str(uuid.uuid4()),
            "amount": "1000",
            "returnUrl": "https://x",
        }
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sber_app()), base_url="http://sb/payment/rest"
        ) as c:
            if method == "GET":
                r = await c.get("/register.do", params=params)
            else:
                r = await c.post("/register.do", data=params)
            again = await c.post("/register.do", data=params)
            status = await c.post("/getOrderStatusExtended.do", data={**params, "orderId": r.json()["orderId"]})
            unknown = await c.post("/getOrderStatusExtended.do", data={**params, "orderId": "nope"})
            denied = await c.post("/register.do", data={**params, "password": "x"})

        assert "errorCode" not in r.json()
        assert r.json()["formUrl"]
        assert again.json()["errorCode"] == "1"
        assert status.json()["orderStatus"] == 0
        assert status.json()["actionCode"] == -100
        assert status.json()["paymentAmountInfo"]["paymentState"] == "CREATED"
        assert unknown.json()["errorCode"] == "6"
        assert denied.json()["errorCode"] == "5"


async def test_mobile_idempotency_conflict() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=mobile_app()),
        base_url="http://mc/v1",
        headers={"Authorization": "Bearer test_api_key"},
    ) as c:
        body = {"merchant_charge_id": "a1", "phone": "79161234567", "amount": 30_000}
        first = await c.post("/charges", json=body, headers={"Idempotency-Key": "k1"})
        replay = await c.post("/charges", json=body, headers={"Idempotency-Key": "k1"})
        conflict = await c.post("/charges", json={**body, "amount": 40_000}, headers={"Idempotency-Key": "k1"})
        unauthorized = await c.get("/charges/x", headers={"Authorization": "Bearer nope"})

    assert replay.json()["id"] == first.json()["id"]
    assert first.json()["operator"] == "mts"
    assert conflict.status_code == 409
    assert unauthorized.status_code == 401
