"""The official ``yookassa`` SDK, unchanged, against the emulator served on a real loopback port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from emulators._common.server import serve_in_thread
from emulators.yookassa.app import create_app
from yookassa.domain.exceptions import BadRequestError, NotFoundError, UnauthorizedError

from yookassa import Configuration, Payment, Refund


@pytest.fixture(scope="module")
def emulator() -> Iterator[tuple[str, Any]]:
    app = create_app()
    with serve_in_thread(app) as url:
        app.state.emulator.config.public_base_url = url
        Configuration.configure("100500", "test_secret_key", api_url=url + "/v3")
        yield url, app


def pay(url: str, payment_id: str) -> None:
    httpx.post(f"{url}/_emulator/payments/{payment_id}/pay", json={}).raise_for_status()


def new_payment(capture: bool, value: str = "1220.00") -> Any:
    return Payment.create(
        {
            "amount": {"value": value, "currency": "RUB"},
            "capture": capture,
            "confirmation": {"type": "redirect", "return_url": "https://store.example/return/42"},
            "description": "Order 42",
            "metadata": {"order_id": "42"},
            "receipt": {
                "customer": {"email": "buyer@example.com"},
                "items": [
                    {
                        "description": "Game key: Example",
                        "quantity": "1.00",
                        "amount": {"value": value, "currency": "RUB"},
                        "vat_code": 11,
                        "payment_mode": "full_payment",
                        "payment_subject": "intellectual_activity",
                    }
                ],
            },
        },
        str(uuid.uuid4()),
    )


def test_create_get_capture_refund(emulator: tuple[str, Any]) -> None:
    url, _ = emulator

    created = new_payment(capture=False)
    pay(url, created.id)
    found = Payment.find_one(created.id)
    captured = Payment.capture(created.id, {"amount": {"value": "1000.00", "currency": "RUB"}}, str(uuid.uuid4()))
    refund = Refund.create(
        {"payment_id": created.id, "amount": {"value": "100.00", "currency": "RUB"}}, str(uuid.uuid4())
    )

    assert created.status == "pending"
    assert created.confirmation.confirmation_url.startswith(url)
    assert found.status == "waiting_for_capture"
    assert found.payment_method.card.last4 == "4444"
    assert captured.status == "succeeded"
    assert str(captured.amount.value) in ("1000.00", "1000.0", "1000")
    assert refund.status == "succeeded"
    assert Refund.find_one(refund.id).payment_id == created.id
    assert created.metadata["cms_name"]  # the SDK adds it; the emulator echoes metadata unchanged


def test_cancel_and_its_error(emulator: tuple[str, Any]) -> None:
    url, _ = emulator
    created = new_payment(capture=False)
    pay(url, created.id)

    canceled = Payment.cancel(created.id, str(uuid.uuid4()))
    with pytest.raises(BadRequestError) as err:
        Payment.cancel(created.id, str(uuid.uuid4()))

    assert canceled.status == "canceled"
    assert canceled.cancellation_details.reason == "canceled_by_merchant"
    assert "can not be canceled" in str(err.value)


def test_one_stage_payment_and_idempotent_replay(emulator: tuple[str, Any]) -> None:
    url, _ = emulator
    key = str(uuid.uuid4())
    body = {
        "amount": {"value": "10.00", "currency": "RUB"},
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": "https://x.example"},
    }

    first = Payment.create(body, key)
    again = Payment.create(body, key)
    pay(url, first.id)

    assert again.id == first.id
    assert Payment.find_one(first.id).status == "succeeded"


def test_sdk_errors(emulator: tuple[str, Any]) -> None:
    url, _ = emulator
    with pytest.raises(NotFoundError):
        Payment.find_one("no-such-payment")
    Configuration.configure("100500", "wrong", api_url=url + "/v3")
    try:
        with pytest.raises(UnauthorizedError):
            Payment.find_one("x")
    finally:
        Configuration.configure("100500", "test_secret_key", api_url=url + "/v3")
