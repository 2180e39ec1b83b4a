"""Raw HTTP against the YooKassa emulator: what the SDK validates for us must be checked by hand."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from emulators.yookassa.app import create_app

AUTH = ("100500", "test_secret_key")
BODY = {
    "amount": {"value": "100.00", "currency": "RUB"},
    "capture": True,
    "confirmation": {"type": "redirect", "return_url": "https://x.example"},
}


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app()), base_url="http://yk/v3", auth=AUTH
    ) as c:
        yield c


def key() -> dict[str, str]:
    return {"Idempotence-Key": str(uuid.uuid4())}


async def test_answers_200_with_decimal_string_amounts(api: httpx.AsyncClient) -> None:
    r = await api.post("/payments", json=BODY, headers=key())

    assert r.status_code == 200
    assert r.json()["amount"] == {"value": "100.00", "currency": "RUB"}
    assert r.json()["test"] is True


@pytest.mark.parametrize(
    ("headers", "auth", "status", "code"),
    [
        ({}, AUTH, 400, "invalid_request"),
        ({"Idempotence-Key": "x" * 65}, AUTH, 400, "invalid_request"),
        ({"Idempotence-Key": "k"}, ("100500", "wrong"), 401, "invalid_credentials"),
    ],
)
async def test_error_envelope(
    api: httpx.AsyncClient, headers: dict[str, str], auth: tuple[str, str], status: int, code: str
) -> None:
    r = await api.post("/payments", json=BODY, headers=headers, auth=auth)

    assert r.status_code == status
    assert r.json()["type"] == "error"
    assert r.json()["code"] == code
    assert r.json()["id"]


async def test_idempotence_key_replays_and_rejects_another_body(api: httpx.AsyncClient) -> None:
    h = key()

    first = await api.post("/payments", json=BODY, headers=h)
    again = await api.post("/payments", json=BODY, headers=h)
    other = await api.post("/payments", json={**BODY, "description": "changed"}, headers=h)

    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 400
    assert other.json()["description"] == "Idempotence key duplicated"


@pytest.mark.parametrize(
    "mutation",
    [
        {"amount": {"value": "0.00", "currency": "RUB"}},
        {"amount": {"value": "1.005", "currency": "RUB"}},
        {"amount": {"value": "100.00", "currency": "USD"}},
        {"description": "x" * 129},
        {"metadata": {f"k{i}": "v" for i in range(17)}},
        {"payment_method_data": {"type": "sbp"}, "capture": False},
        {"payment_method_data": {"type": "bank_card", "card": {"number": "4111111111111111"}}},
        {"confirmation": {"type": "redirect"}},
        {"payment_method_data": {"type": "mobile_balance", "phone": "79000000000"}},
        {
            "receipt": {
                "customer": {"email": "a@b.c"},
                "items": [
                    {
                        "description": "x",
                        "quantity": "1",
                        "amount": {"value": "99.00", "currency": "RUB"},
                        "vat_code": 11,
                    }
                ],
            }
        },
    ],
)
async def test_validation(api: httpx.AsyncClient, mutation: dict[str, object]) -> None:
    r = await api.post("/payments", json={**BODY, **mutation}, headers=key())

    assert r.status_code in (400, 403)
    assert r.json()["type"] == "error"


async def test_capture_of_autocapture_payment_is_refused(api: httpx.AsyncClient) -> None:
    pid = (await api.post("/payments", json=BODY, headers=key())).json()["id"]

    r = await api.post(f"/payments/{pid}/capture", headers=key())

    assert r.status_code == 400
    assert r.json()["description"] == "You can not capture payment with autocapture"
