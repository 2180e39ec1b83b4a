"""Donations over REST: card through the emulator (webhook → worker → split), wallet, refusals,
visibility, overlay tokens. Every money test checks the ledger to the kopeck."""

from __future__ import annotations

import hashlib
import uuid

import orjson

from payment_service.donation import service as donation_service
from payment_service.models.payment import PaymentPurpose
from payment_service.payment import service as payment_service
from tests.donation.conftest import DonationsEnv, fund_wallet

STREAMER = "streamer-1"
VIEWER = "viewer-1"


async def provider_payment_id(env: DonationsEnv, payment_id: str) -> str:
    value = await env.scalar(
        "SELECT provider_payment_id FROM payment_attempts WHERE payment_id = :p ORDER BY number DESC LIMIT 1",
        p=uuid.UUID(payment_id),
    )
    assert value
    return str(value)


async def outbox(env: DonationsEnv, type_: str) -> list[dict]:
    rows = await env.rows("SELECT payload FROM outbox_events WHERE type = :t ORDER BY seq", t=type_)
    return [r[0] if isinstance(r[0], dict) else orjson.loads(r[0]) for r in rows]


class TestCardDonation:
    async def test_paid_by_card_the_webhook_splits_the_money_once_and_emits_the_event(
        self, donations: DonationsEnv
    ) -> None:
        created = await donations.donate(amount="500.00", provider="yookassa")

        assert created.status_code == 201, created.text
        body = created.json()
        assert body["status"] == "pending"
        assert body["fee"] == {"value": "25.00", "currency": "RUB"}
        assert body["streamer_amount"] == {"value": "475.00", "currency": "RUB"}
        assert body["payment"]["status"] == "requires_action"
        assert body["payment"]["action"]["url"].startswith("http")
        assert await donations.balance(f"streamer:{STREAMER}:balance") == 0

        await donations.env.pay(
            "yookassa", await provider_payment_id(donations, body["payment"]["id"]), card_number=None, outcome=None
        )
        assert await donations.env.worker.apply_webhooks() >= 1
        await donations.env.worker.apply_webhooks()  # a second run finds nothing more to do

        got = await donations.client.get(f"/v1/donations/{body['id']}", headers=donations.headers(VIEWER))
        assert got.json()["status"] == "processed"
        assert got.json()["alert_id"] == 1
        assert await donations.balance(f"streamer:{STREAMER}:balance") == 47_500
        assert await donations.balance("platform:fees") == 2_500
        assert await donations.balance("platform:donation_clearing") == 0
        assert await donations.balance("platform:order_clearing") == 0
        splits = await donations.scalar(
            "SELECT count(*) FROM ledger_transfers WHERE reference = :r", r=f"donation:{body['id']}"
        )
        assert splits == 1
        processed = await outbox(donations, "donation.processed")
        assert len(processed) == 1
        assert processed[0]["donation_id"] == body["id"]
        assert processed[0]["payment_id"] == body["payment"]["id"]
        assert (processed[0]["amount_minor"], processed[0]["streamer_amount_minor"], processed[0]["fee_minor"]) == (
            50_000,
            47_500,
            2_500,
        )
        assert processed[0]["alert_seq"] == 1
        assert processed[0]["message"] == "Привет со стрима!"
        key = await donations.scalar("SELECT key FROM outbox_events WHERE type = 'donation.processed'")
        assert key == STREAMER

    async def test_declined_card_fails_the_donation_and_moves_nothing(self, donations: DonationsEnv) -> None:
        body = (await donations.donate(amount="499.11", provider="yookassa")).json()  # magic kopecks 11: declined

        await donations.env.pay(
            "yookassa", await provider_payment_id(donations, body["payment"]["id"]), card_number=None, outcome=None
        )
        await donations.env.worker.apply_webhooks()

        got = (await donations.client.get(f"/v1/donations/{body['id']}", headers=donations.headers(VIEWER))).json()
        assert got["status"] == "failed"
        assert got["failure_code"] == "payment_failed"
        assert got["alert_id"] is None
        assert await donations.balance(f"streamer:{STREAMER}:balance") == 0
        failed = await outbox(donations, "donation.failed")
        assert [f["reason"] for f in failed] == ["payment_failed"]
        assert await outbox(donations, "donation.processed") == []

    async def test_the_payment_status_hook_is_registered(self) -> None:
        assert donation_service.on_payment_status in payment_service.status_hooks(PaymentPurpose.donation)


class TestWalletDonation:
    async def test_from_the_wallet_is_processed_at_once_and_a_replay_moves_nothing_more(
        self, donations: DonationsEnv
    ) -> None:
        await fund_wallet(donations.resources, VIEWER, 1000_00)

        first = await donations.donate(method="wallet", amount="123.45", key="don-1")
        again = await donations.donate(method="wallet", amount="123.45", key="don-1")

        assert first.status_code == 201, first.text
        assert first.json()["status"] == "processed"
        assert first.json()["alert_id"] == 1
        assert first.json()["payment"] is None
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        fee = 6_17  # 5 % of 123.45 = 6.1725 → 6.17 (largest remainder), above the 5.00 minimum
        assert first.json()["fee"]["value"] == "6.17"
        assert await donations.balance(f"user:{VIEWER}:wallet") == 1000_00 - 123_45
        assert await donations.balance(f"streamer:{STREAMER}:balance") == 123_45 - fee
        assert await donations.balance("platform:fees") == fee
        assert await donations.scalar("SELECT count(*) FROM donations") == 1
        assert len(await outbox(donations, "donation.processed")) == 1

    async def test_alert_ids_count_up_per_streamer(self, donations: DonationsEnv) -> None:
        await fund_wallet(donations.resources, VIEWER, 1000_00)

        ids = [(await donations.donate(method="wallet", amount="10.00")).json()["alert_id"] for _ in range(3)]
        other = (await donations.donate(method="wallet", amount="10.00", streamer_id="streamer-2")).json()

        assert ids == [1, 2, 3]
        assert other["alert_id"] == 1

    async def test_a_short_wallet_is_402_and_records_nothing(self, donations: DonationsEnv) -> None:
        await fund_wallet(donations.resources, VIEWER, 50_00)

        r = await donations.donate(method="wallet", amount="60.00")

        assert r.status_code == 402
        assert r.json()["code"] == "insufficient_funds"
        assert r.json()["shortfall"] == {"value": "10.00", "currency": "RUB"}
        assert await donations.scalar("SELECT count(*) FROM donations") == 0
        assert await donations.scalar("SELECT count(*) FROM donation_streamers") == 0
        assert await donations.balance(f"user:{VIEWER}:wallet") == 50_00

    async def test_messages_and_names_are_moderated_before_they_are_stored(self, donations: DonationsEnv) -> None:
        await fund_wallet(donations.resources, VIEWER, 100_00)

        r = await donations.donate(
            method="wallet", amount="10.00", message="смотри http://spam.example круто", display_name="  "
        )

        assert r.json()["message"] == "смотри круто"
        assert r.json()["display_name"] == "Аноним"
        flags = await donations.scalar("SELECT moderation_flags FROM donations")
        assert "message:link_removed" in flags


class TestRefusals:
    async def test_a_streamer_cannot_donate_to_themselves(self, donations: DonationsEnv) -> None:
        r = await donations.donate(donor=STREAMER, method="wallet", amount="10.00")

        assert r.status_code == 422
        assert r.json()["code"] == "self_donation"

    async def test_amounts_outside_the_limits_are_refused(self, donations: DonationsEnv) -> None:
        small = await donations.donate(amount="9.99")
        foreign = await donations.donate(amount="10.00", currency="USD")

        assert (small.status_code, small.json()["code"]) == (422, "invalid_amount")
        assert small.json()["minimum"] == {"value": "10.00", "currency": "RUB"}
        assert (foreign.status_code, foreign.json()["code"]) == (422, "invalid_amount")

    async def test_a_user_cannot_donate_for_someone_else(self, donations: DonationsEnv) -> None:
        r = await donations.donate(method="wallet", amount="10.00", donor_id="someone-else")

        assert r.status_code == 403
        assert r.json()["code"] == "donor_not_allowed"

    async def test_a_card_donation_needs_a_return_url(self, donations: DonationsEnv) -> None:
        r = await donations.donate(return_url=None)

        assert r.status_code == 422


class TestVisibility:
    async def test_donor_and_streamer_see_it_others_do_not(self, donations: DonationsEnv) -> None:
        body = (await donations.donate(amount="50.00", provider="yookassa")).json()

        as_donor = await donations.client.get(f"/v1/donations/{body['id']}", headers=donations.headers(VIEWER))
        as_streamer = await donations.client.get(f"/v1/donations/{body['id']}", headers=donations.headers(STREAMER))
        as_other = await donations.client.get(f"/v1/donations/{body['id']}", headers=donations.headers("nosy"))

        assert as_donor.json()["payment"]["id"] == body["payment"]["id"]
        assert as_streamer.status_code == 200
        assert as_streamer.json()["payment"] is None  # the donor's payment is not the streamer's business
        assert as_other.status_code == 404
        assert as_other.json()["code"] == "donation_not_found"


class TestOverlayToken:
    async def test_rotation_returns_the_token_once_and_stores_only_its_hash(self, donations: DonationsEnv) -> None:
        first = await donations.client.post(
            "/v1/donations/overlay-token", headers=donations.headers(STREAMER, key="rot-1")
        )
        replay = await donations.client.post(
            "/v1/donations/overlay-token", headers=donations.headers(STREAMER, key="rot-1")
        )

        assert first.status_code == 201, first.text
        token = first.headers["overlay-token"]
        assert token.startswith("dov_")
        assert first.headers["cache-control"] == "no-store"
        assert first.json()["token_hint"] == token[:8]
        assert "overlay-token" not in replay.headers
        assert token not in replay.text
        stored = await donations.scalar("SELECT overlay_token_hash FROM donation_streamers")
        assert stored == hashlib.sha256(token.encode()).hexdigest()
        leaked = await donations.scalar(
            "SELECT count(*) FROM idempotency_keys WHERE position(:t IN convert_from(response_body, 'UTF8')"
            " || coalesce(response_headers::text, '')) > 0",
            t=token,
        )
        assert leaked == 0

    async def test_services_have_no_overlay_token(self, donations: DonationsEnv) -> None:
        token = donations.env.tokens.service("streaming", ["donations:write"])

        r = await donations.client.post(
            "/v1/donations/overlay-token", headers=donations.env.tokens.headers(token, key="k")
        )

        assert r.status_code == 403
        assert r.json()["code"] == "overlay_token_for_users_only"
