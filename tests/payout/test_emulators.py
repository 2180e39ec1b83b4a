"""The payout emulators on the wire: the official ``yookassa`` SDK, and what the SDK would hide."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from emulators._common.server import serve_in_thread
from emulators.bank_transfer.app import create_app as bank_app
from emulators.yookassa_payouts.app import create_app as payouts_app
from emulators.yookassa_payouts.state import PayoutsConfig
from yookassa.domain.exceptions import BadRequestError, NotFoundError

from payment_service.providers.bank_transfer import webhooks as bank_webhooks
from payment_service.providers.errors import ProviderSignatureInvalid
from tests.payout.conftest import BIC, bank_account
from yookassa import Configuration, Payout, SbpBanks

AGENT = ("505050", "test_payout_secret")


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with serve_in_thread(payouts_app(PayoutsConfig(settle_seconds=None))) as url:
        Configuration.configure(*AGENT, api_url=url + "/v3")
        yield url


def test_the_official_sdk_creates_and_reads_payouts(served: str) -> None:
    token = httpx.post(f"{served}/_emulator/payout-tokens", json={"card_number": "2200770239097761"}).json()

    card = Payout.create(
        {
            "amount": {"value": "320.00", "currency": "RUB"},
            "payout_token": token["payout_token"],
            "description": "Выплата",
        },
        str(uuid.uuid4()),
    )
    sbp = Payout.create(
        {
            "amount": {"value": "100.20", "currency": "RUB"},
            "payout_destination_data": {"type": "sbp", "phone": "79000000000", "bank_id": "100000000111"},
        },
        str(uuid.uuid4()),
    )
    httpx.post(f"{served}/_emulator/payouts/settle-all").raise_for_status()
    paid, refused = Payout.find_one(card.id), Payout.find_one(sbp.id)
    wallet = Payout.create(
        {
            "amount": {"value": "10.00", "currency": "RUB"},
            "payout_destination_data": {"type": "yoo_money", "account_number": "4100116075156746"},
        },
        str(uuid.uuid4()),
    )

    assert card.status == "pending"
    assert card.id.startswith("po-")
    assert (card.payout_destination.type, card.payout_destination.card.last4) == ("bank_card", "7761")
    assert card.payout_destination.card.card_type == "Mir"
    assert paid.status == "succeeded"
    assert (refused.status, refused.cancellation_details.reason) == ("canceled", "recipient_not_found")
    assert refused.cancellation_details.party == "payout_network"
    assert wallet.payout_destination.account_number == "4100116075156746"
    assert "100000000111" in [b.bank_id for b in SbpBanks.list().items]
    with pytest.raises(NotFoundError):
        Payout.find_one("po-missing")
    with pytest.raises(BadRequestError):
        Payout.create({"amount": {"value": "1.00", "currency": "RUB"}, "payout_token": "pt-forged"}, str(uuid.uuid4()))


@pytest.fixture
async def yk() -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = payouts_app(PayoutsConfig(settle_seconds=None, payout_balance_minor=1_000_00))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://yk/v3", auth=AGENT) as c:
        yield c, app.state.emulator


SBP = {"type": "sbp", "phone": "79000000000", "bank_id": "100000000004"}


def body(value: str = "100.00", **extra: Any) -> dict[str, Any]:
    return {"amount": {"value": value, "currency": "RUB"}, "payout_destination_data": SBP, **extra}


class TestYooKassaPayoutsWire:
    async def test_the_idempotence_key_replays_and_refuses_another_body(
        self, yk: tuple[httpx.AsyncClient, Any]
    ) -> None:
        api, _ = yk
        h = {"Idempotence-Key": str(uuid.uuid4())}

        first = await api.post("/payouts", json=body(), headers=h)
        again = await api.post("/payouts", json=body(), headers=h)
        other = await api.post("/payouts", json=body("200.00"), headers=h)
        keyless = await api.post("/payouts", json=body())

        assert first.json()["amount"] == {"value": "100.00", "currency": "RUB"}
        assert again.json()["id"] == first.json()["id"]
        assert (other.status_code, other.json()["description"]) == (400, "Idempotence key duplicated")
        assert keyless.status_code == 400

    @pytest.mark.parametrize(
        ("payload", "status"),
        [
            (
                {
                    "amount": {"value": "10.00", "currency": "RUB"},
                    "payout_destination_data": {"type": "bank_card", "card": {"number": "5555555555554444"}},
                },
                403,
            ),
            (body(payout_destination_data={**SBP, "bank_id": "999"}), 400),
            (body(payout_destination_data={**SBP, "phone": "+7900"}), 400),
            (body("0.00"), 400),
            (body("1.005"), 400),
            (body(description="x" * 129), 400),
            (body(payout_token="pt-1"), 400),
        ],
    )
    async def test_refuses_what_the_api_refuses(
        self, yk: tuple[httpx.AsyncClient, Any], payload: dict[str, Any], status: int
    ) -> None:
        api, _ = yk

        r = await api.post("/payouts", json=payload, headers={"Idempotence-Key": str(uuid.uuid4())})

        assert r.status_code == status
        assert r.json()["type"] == "error"

    async def test_wrong_credentials_are_401(self, yk: tuple[httpx.AsyncClient, Any]) -> None:
        api, _ = yk

        r = await api.get("/payouts/po-1", auth=("505050", "wrong"))

        assert (r.status_code, r.json()["code"]) == (401, "invalid_credentials")

    async def test_the_payout_balance_is_real(self, yk: tuple[httpx.AsyncClient, Any]) -> None:
        api, state = yk

        big = await api.post("/payouts", json=body("2000.00"), headers={"Idempotence-Key": "k1"})
        ok = await api.post("/payouts", json=body("600.00"), headers={"Idempotence-Key": "k2"})
        state.settle(ok.json()["id"], "cancel:rejected_by_payee")

        assert (big.json()["status"], big.json()["cancellation_details"]["reason"]) == (
            "canceled",
            "insufficient_funds",
        )
        assert state.balance_minor == 1_000_00  # reserved for the second, released when it was canceled


@pytest.fixture
async def bank() -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = bank_app()
    headers = {"Authorization": "Bearer test_bank_key"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bank/v1", headers=headers
    ) as c:
        yield c, app.state.emulator


def transfer(reference: str = "ref-1", amount: int = 100_00, account: str | None = None) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "RUB",
        "client_reference": reference,
        "recipient": {"name": "Иванов Иван", "account_number": account or bank_account(1), "bic": BIC},
        "purpose": "Выплата вознаграждения",
    }


class TestBankWire:
    async def test_transfers_are_idempotent_and_findable_by_our_reference(
        self, bank: tuple[httpx.AsyncClient, Any]
    ) -> None:
        api, _ = bank

        first = await api.post("/transfers", json=transfer(), headers={"Idempotency-Key": "a"})
        again = await api.post("/transfers", json=transfer(), headers={"Idempotency-Key": "a"})
        other_body = await api.post("/transfers", json=transfer(amount=5), headers={"Idempotency-Key": "a"})
        same_reference = await api.post("/transfers", json=transfer(), headers={"Idempotency-Key": "b"})
        found = await api.get("/transfers", params={"client_reference": "ref-1"})

        assert first.json()["status"] == "processing"
        assert again.json()["id"] == first.json()["id"]
        assert other_body.status_code == 409
        assert (same_reference.status_code, same_reference.json()["error"]["code"]) == (409, "duplicate_reference")
        assert [t["id"] for t in found.json()["items"]] == [first.json()["id"]]

    @pytest.mark.parametrize(
        ("mutation", "code"),
        [
            ({"recipient": {"name": "X", "account_number": "40817810099910004312", "bic": BIC}}, "invalid_account"),
            ({"recipient": {"name": "X", "account_number": bank_account(1), "bic": "12"}}, "invalid_bic"),
            ({"amount": 1.5}, "invalid_request"),
            ({"currency": "USD"}, "invalid_request"),
        ],
    )
    async def test_refuses_bad_transfers(
        self, bank: tuple[httpx.AsyncClient, Any], mutation: dict[str, Any], code: str
    ) -> None:
        api, _ = bank

        r = await api.post(
            "/transfers", json={**transfer(), **mutation}, headers={"Idempotency-Key": str(uuid.uuid4())}
        )

        assert (r.status_code, r.json()["error"]["code"]) == (422, code)

    async def test_webhooks_carry_a_signature_our_adapter_accepts(self, bank: tuple[httpx.AsyncClient, Any]) -> None:
        api, state = bank
        sink: list[httpx.Request] = []
        state.webhooks.transport = httpx.MockTransport(lambda r: sink.append(r) or httpx.Response(200))
        state.config.webhook_url = "http://svc/hook"
        created = await api.post("/transfers", json=transfer(amount=100_20), headers={"Idempotency-Key": "w"})

        state.settle(created.json()["id"])
        await state.webhooks.flush()
        event = bank_webhooks.verify_and_parse(
            sink[0].content, dict(sink[0].headers), secret="test_bank_webhook_secret"
        )

        assert (event.type, event.data.rejection.code if event.data.rejection else None) == (
            "transfer.rejected",
            "account_not_found",
        )
        with pytest.raises(ProviderSignatureInvalid, match="signature mismatch"):
            bank_webhooks.verify_and_parse(sink[0].content, dict(sink[0].headers), secret="other")
        assert time.time() - event.created_at < 60
