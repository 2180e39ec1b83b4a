"""The steady outage switch (``fault_mode``/``fault_rate`` in ``POST /_emulator/config``), per emulator,
through HTTP, and withdrawing queued outcomes (``DELETE /_emulator/next-outcome``)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from emulators.bank_transfer.app import create_app as bank_transfer_app
from emulators.mobile.app import create_app as mobile_app
from emulators.sber.app import create_app as sber_app
from emulators.tbank.app import create_app as tbank_app
from emulators.tbank.webhooks import token
from emulators.yookassa.app import create_app as yookassa_app
from emulators.yookassa_payouts.app import create_app as payouts_app
from fastapi import FastAPI


def tbank_signed(params: dict[str, Any]) -> dict[str, Any]:
    body = {"TerminalKey": "TestTerminalDEMO", **params}
    body["Token"] = token(body, "test_password")
    return body


SBER_AUTH = {"userName": "store-api", "password": "store-password"}


@dataclass(frozen=True)
class Family:
    """How to create a payment and read its status on one emulator, and what "it worked" looks like."""

    name: str
    app: Callable[[], FastAPI]
    create: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
    created_id: Callable[[httpx.Response], str]
    status: Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]
    fault_503: Callable[[httpx.Response], bool]


async def yk_create(c: httpx.AsyncClient) -> httpx.Response:
    body = {
        "amount": {"value": "100.00", "currency": "RUB"},
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": "https://x.example"},
    }
    return await c.post(
        "/v3/payments", json=body, headers={"Idempotence-Key": str(uuid.uuid4())}, auth=("100500", "test_secret_key")
    )


async def yk_status(c: httpx.AsyncClient, pid: str) -> httpx.Response:
    return await c.get(f"/v3/payments/{pid}", auth=("100500", "test_secret_key"))


async def tb_create(c: httpx.AsyncClient) -> httpx.Response:
    return await c.post("/v2/Init", json=tbank_signed({"Amount": 10_000, "OrderId": str(uuid.uuid4())}))


async def tb_status(c: httpx.AsyncClient, pid: str) -> httpx.Response:
    return await c.post("/v2/GetState", json=tbank_signed({"PaymentId": pid}))


async def sb_create(c: httpx.AsyncClient) -> httpx.Response:
    params = {**SBER_AUTH, "orderNumber": str(uuid.uuid4()), "amount": "10000", "returnUrl": "https://x"}
    return await c.post("/payment/rest/register.do", data=params)


async def sb_status(c: httpx.AsyncClient, pid: str) -> httpx.Response:
    return await c.post("/payment/rest/getOrderStatusExtended.do", data={**SBER_AUTH, "orderId": pid})


MC_AUTH = {"Authorization": "Bearer test_api_key"}


async def mc_create(c: httpx.AsyncClient) -> httpx.Response:
    body = {"merchant_charge_id": str(uuid.uuid4()), "phone": "79161234567", "amount": 30_000}
    return await c.post("/v1/charges", json=body, headers={**MC_AUTH, "Idempotency-Key": str(uuid.uuid4())})


async def mc_status(c: httpx.AsyncClient, pid: str) -> httpx.Response:
    return await c.get(f"/v1/charges/{pid}", headers=MC_AUTH)


FAMILIES = [
    Family(
        "yookassa",
        yookassa_app,
        yk_create,
        lambda r: str(r.json()["id"]),
        yk_status,
        lambda r: r.status_code == 503 and r.json()["code"] == "internal_server_error",
    ),
    Family(
        "tbank",
        tbank_app,
        tb_create,
        lambda r: str(r.json()["PaymentId"]),
        tb_status,
        lambda r: r.status_code == 503 and r.text == "Service Unavailable",
    ),
    Family(
        "sber",
        sber_app,
        sb_create,
        lambda r: str(r.json()["orderId"]),
        sb_status,
        lambda r: r.status_code == 503 and r.text == "Service Unavailable",
    ),
    Family(
        "mobile",
        mobile_app,
        mc_create,
        lambda r: str(r.json()["id"]),
        mc_status,
        lambda r: r.status_code == 503 and r.json()["error"]["code"] == "unavailable",
    ),
]


@pytest.fixture(params=FAMILIES, ids=[f.name for f in FAMILIES])
def family(request: pytest.FixtureRequest) -> Family:
    f = request.param
    assert isinstance(f, Family)
    return f


@pytest.fixture
async def client(family: Family) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=family.app()), base_url="http://emu") as c:
        yield c


def ok(r: httpx.Response) -> bool:
    """A normal answer of the provider (each family reports its business errors differently)."""
    if r.status_code != 200:
        return False
    body = r.json()
    return body.get("Success", True) is not False and body.get("errorCode", "0") == "0"


async def config(c: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    return await c.post("/_emulator/config", json=changes)


async def test_an_outage_fails_every_api_call_until_switched_off(family: Family, client: httpx.AsyncClient) -> None:
    before = await family.create(client)
    pid = family.created_id(before)
    await client.post("/_emulator/next-outcome", json={"outcome": "decline:insufficient_funds"})

    switched = await config(client, fault_mode="error_503", fault_rate=1.0)
    create = await family.create(client)
    status = await family.status(client, pid)
    during = (await client.get("/_emulator/outage")).json()
    objects_during = (await client.get("/_emulator/objects")).json()
    ended = await config(client, fault_mode=None)
    after_status = await family.status(client, pid)
    after_create = await family.create(client)
    queued = await client.post("/_emulator/next-outcome", json={"outcome": "success", "count": 0})

    assert ok(before)
    assert switched.status_code == 200
    assert switched.json()["outage"]["fault_mode"] == "error_503"
    assert family.fault_503(create), create.text
    assert family.fault_503(status), status.text
    assert during == {
        "fault_mode": "error_503",
        "fault_rate": 1.0,
        "fault_seed": 0,
        "calls": 2,
        "faults": {"error_503": 2},
    }
    assert sum(len(v) for v in objects_during.values() if isinstance(v, dict)) == 1  # nothing created meanwhile
    assert ended.json()["outage"]["fault_mode"] is None
    assert ok(after_status), after_status.text
    assert ok(after_create), after_create.text
    # the outage did not consume the queued outcome: the create after it took it
    assert queued.json()["queued"] == []


async def test_error_500_on_a_status_call(family: Family, client: httpx.AsyncClient) -> None:
    pid = family.created_id(await family.create(client))
    await config(client, fault_mode="error_500")

    status = await family.status(client, pid)

    assert status.status_code == 500


async def test_hang_answers_500_after_hang_seconds_and_slow_answers_normally(
    family: Family, client: httpx.AsyncClient
) -> None:
    await config(client, fault_mode="hang", hang_seconds=0)
    hung = await family.create(client)
    await config(client, fault_mode="slow", slow_seconds=0)
    slow = await family.create(client)
    outage = (await client.get("/_emulator/outage")).json()

    assert hung.status_code == 500
    assert ok(slow), slow.text
    assert outage["faults"] == {"slow": 1}  # setting a fault_* field restarts the counters


async def test_fault_rate_takes_a_seeded_share_of_calls(family: Family, client: httpx.AsyncClient) -> None:
    pid = family.created_id(await family.create(client))
    draws = random.Random(7)
    expected = [draws.random() < 0.5 for _ in range(12)]

    await config(client, fault_mode="error_503", fault_rate=0.5, fault_seed=7)
    first = [(await family.status(client, pid)).status_code == 503 for _ in range(12)]
    await config(client, fault_rate=0.5)  # restarts the draws from the seed
    again = [(await family.status(client, pid)).status_code == 503 for _ in range(12)]
    outage = (await client.get("/_emulator/outage")).json()

    assert first == expected
    assert again == expected
    assert 0 < sum(expected) < 12
    assert outage["calls"] == 12
    assert outage["faults"] == {"error_503": sum(expected)}


async def test_rate_zero_spares_every_call(family: Family, client: httpx.AsyncClient) -> None:
    await config(client, fault_mode="error_503", fault_rate=0)

    created = [await family.create(client) for _ in range(3)]

    assert all(ok(r) for r in created)
    assert (await client.get("/_emulator/outage")).json()["faults"] == {}


async def test_control_endpoints_and_the_customer_still_work_during_an_outage(
    family: Family, client: httpx.AsyncClient
) -> None:
    pid = family.created_id(await family.create(client))
    await config(client, fault_mode="error_503")

    paid = await client.post(f"/_emulator/payments/{pid}/pay", json={})
    ledger = await client.get("/_emulator/ledger")

    assert paid.status_code == 200
    assert [e["kind"] for e in ledger.json()] in (["charge"], ["hold"])


async def test_reset_ends_the_outage(family: Family, client: httpx.AsyncClient) -> None:
    await config(client, fault_mode="error_503")

    await client.post("/_emulator/reset")

    assert ok(await family.create(client))
    assert (await client.get("/_emulator/outage")).json()["fault_mode"] is None


async def test_queued_outcomes_can_be_withdrawn(family: Family, client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/next-outcome", json={"outcome": "error_503", "count": 2})

    withdrawn = await client.delete("/_emulator/next-outcome")
    created = await family.create(client)

    assert withdrawn.json() == {"withdrawn": ["error_503", "error_503"], "queued": []}
    assert ok(created), created.text


@pytest.mark.parametrize(
    "changes",
    [
        {"fault_mode": "timeout"},
        {"fault_mode": "drop_after_charge"},
        {"fault_mode": "error_503", "fault_rate": 1.5},
        {"fault_mode": "error_503", "fault_rate": "all"},
        {"fault_mode": "error_503", "fault_seed": "x"},
        {"fault_mode": "error_503", "no_such_field": 1},
    ],
)
async def test_invalid_outage_settings_are_refused_and_change_nothing(
    changes: dict[str, Any], client: httpx.AsyncClient, family: Family
) -> None:
    refused = await client.post("/_emulator/config", json=changes)

    assert refused.status_code == 400
    assert (await client.get("/_emulator/outage")).json()["fault_mode"] is None
    assert ok(await family.create(client))


@pytest.mark.parametrize(
    ("app", "path", "headers", "auth"),
    [
        (bank_transfer_app, "/v1/transfers/nope", {"Authorization": "Bearer test_bank_key"}, None),
        (payouts_app, "/v3/payouts/nope", {}, ("505050", "test_payout_secret")),
    ],
    ids=["bank_transfer", "yookassa_payouts"],
)
async def test_payout_emulators_have_the_switch_too(
    app: Callable[[], FastAPI], path: str, headers: dict[str, str], auth: tuple[str, str] | None
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://emu") as c:
        await config(c, fault_mode="error_503")
        during = await c.get(path, headers=headers, auth=auth)
        await config(c, fault_mode=None)
        after = await c.get(path, headers=headers, auth=auth)

    assert during.status_code == 503
    assert after.status_code == 404
