"""``PaymentServiceClient`` against the real app in process (Postgres, Redis, the provider emulators,
the Tansu broker): the Social and Streaming services' calls, problems, idempotent retries, and the
events those calls produce read back with ``parse_event``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgi_lifespan import LifespanManager

from payment_service.client import (
    DonationCreate,
    DonationProcessed,
    DonationRequested,
    MoneyValue,
    PaymentCreate,
    PaymentServiceClient,
    PaymentServiceError,
    ReferralPayoutCompleted,
    ReferralPayoutCreate,
    ReferralPayoutRequested,
    RetryPolicy,
    build_event,
    parse_event,
)
from payment_service.config import Settings
from payment_service.kit import idempotency
from payment_service.main import create_app
from payment_service.outbox.relay import OutboxRelay
from payment_service.resources import Resources
from tests.client.conftest import Clients
from tests.client.helpers import deliver, relay_messages
from tests.outbox.helpers import read_topic, running, wait_until
from tests.payment.conftest import PaymentsEnv
from tests.payment.test_long_poll import limiter_of, until

VIEWER = "viewer-1"
STREAMER = "streamer-1"


def referral(request_id: str, *, user: str = VIEWER, amount: int = 1500_00, **kw: Any) -> ReferralPayoutCreate:
    return ReferralPayoutCreate(
        request_id=request_id,
        user_id=user,
        amount=MoneyValue.of_minor(amount, "RUB"),
        reason=kw.pop("reason", "invited a friend"),
        referral_id=kw.pop("referral_id", f"ref-{request_id}"),
        method=kw.pop("method", "internal_balance"),
    )


def wallet_donation(amount: int, *, donor: str = VIEWER) -> DonationCreate:
    return DonationCreate(
        streamer_id=STREAMER,
        amount=MoneyValue.of_minor(amount, "RUB"),
        method="wallet",
        message="Привет со стрима!",
        display_name="Зритель",
        donor_id=donor,
    )


class TestSocialService:
    async def test_a_referral_payout_to_the_wallet_completes_and_repeats_answer_the_same_request(
        self, clients: Clients
    ) -> None:
        async with clients.social() as social, clients.user(VIEWER) as viewer:
            first = await social.request_referral_payout(referral("req-1"))
            replay = await social.request_referral_payout(referral("req-1"), idempotency_key=first.idempotency_key)
            again = await social.request_referral_payout(referral("req-1"))
            read = await social.get_referral_payout("req-1")
            wallet = await viewer.get_my_wallet()

        assert (first.status_code, first.replayed, first.value.status) == (201, False, "completed")
        uuid.UUID(first.idempotency_key)
        assert (replay.status_code, replay.replayed, replay.value) == (201, True, first.value)
        assert (again.status_code, again.replayed, again.value.request_id) == (200, False, "req-1")
        assert again.idempotency_key != first.idempotency_key
        assert read.status == "completed"
        assert read.answered_at is not None
        assert read.amount == MoneyValue(value="1500.00", currency="RUB")
        assert wallet.balance.minor == 1500_00

    async def test_other_content_under_a_known_request_id_is_a_conflict_problem(self, clients: Clients) -> None:
        async with clients.social() as social:
            await social.request_referral_payout(referral("req-2"))
            with pytest.raises(PaymentServiceError) as caught:
                await social.request_referral_payout(referral("req-2", amount=2000_00), idempotency_key="conflict-1")

        error = caught.value
        assert (error.status, error.code, error.idempotency_key, error.attempts) == (
            409,
            "referral_request_conflict",
            "conflict-1",
            1,
        )
        assert error.problem.instance == "/v1/referral-payouts"
        assert error.request_id

    async def test_a_request_published_with_build_event_meets_the_rest_path_on_its_request_id(
        self, clients: Clients
    ) -> None:
        payload = ReferralPayoutRequested(
            request_id="req-kafka-1",
            user_id=VIEWER,
            amount_minor=300_00,
            currency="RUB",
            reason="invited a friend",
            referral_id="ref-req-kafka-1",
            method="internal_balance",
        )
        message = build_event(payload, source="social-service")

        assert await deliver(clients.resources, message) is True
        assert await deliver(clients.resources, message) is False  # a redelivery is skipped by the inbox
        async with clients.social() as social:
            read = await social.get_referral_payout("req-kafka-1")
            same = await social.request_referral_payout(referral("req-kafka-1", amount=300_00))

        assert read.status == "completed"
        assert (same.status_code, same.value.created_at) == (200, read.created_at)


class TestStreamingService:
    async def test_a_wallet_donation_for_a_viewer_is_processed_and_readable(self, clients: Clients) -> None:
        async with clients.social() as social, clients.streaming() as streaming:
            await social.request_referral_payout(referral("req-fund"))
            donated = await streaming.create_donation(wallet_donation(250_00))
            read = await streaming.get_donation(donated.value.id)
            with pytest.raises(PaymentServiceError) as short:
                await streaming.create_donation(wallet_donation(5000_00))

        donation = donated.value
        assert (donated.status_code, donation.status, donation.source, donation.alert_id) == (
            201,
            "processed",
            "wallet",
            1,
        )
        assert donation.amount.minor == donation.fee.minor + donation.streamer_amount.minor == 250_00
        assert read == donation
        assert (short.value.status, short.value.code) == (402, "insufficient_funds")

    async def test_a_donation_request_published_with_build_event_is_answered_by_an_event(
        self, clients: Clients, settings: Settings
    ) -> None:
        async with clients.social() as social:
            await social.request_referral_payout(referral("req-fund-2"))
        message = build_event(
            DonationRequested(viewer_id=VIEWER, streamer_id=STREAMER, amount_minor=100_00, currency="RUB"),
            source="streaming-service",
        )

        await deliver(clients.resources, message)
        answers = [parse_event(headers, value) for _, _, value, headers in await relay_messages(settings)]

        processed = [a.data for a in answers if isinstance(a.data, DonationProcessed)]
        assert len(processed) == 1
        assert (processed[0].request_id, processed[0].amount_minor, processed[0].alert_seq) == (
            message.event_id,
            100_00,
            1,
        )
        async with clients.streaming() as streaming:
            assert (await streaming.get_donation(processed[0].donation_id)).status == "processed"

    async def test_overlay_token_rotation_shows_the_token_once(self, clients: Clients) -> None:
        async with clients.user(STREAMER) as streamer:
            rotated = await streamer.rotate_overlay_token(idempotency_key="rotate-1")
            replay = await streamer.rotate_overlay_token(idempotency_key="rotate-1")

        assert rotated.status_code == 201
        assert rotated.value.token is not None
        assert rotated.value.token.startswith(rotated.value.token_hint)
        assert (replay.replayed, replay.value.token, replay.value.token_hint) == (True, None, rotated.value.token_hint)


class TestProblems:
    async def test_not_found_validation_auth_and_scope_problems(self, clients: Clients) -> None:
        async with clients.streaming() as streaming:
            with pytest.raises(PaymentServiceError) as missing:
                await streaming.get_payment(uuid.uuid4())
            bad = wallet_donation(100_00).model_copy(update={"streamer_id": "not a valid id!"})
            with pytest.raises(PaymentServiceError) as invalid:
                await streaming.create_donation(bad)
        async with clients.make("not-a-jwt") as anonymous, clients.social() as social:
            with pytest.raises(PaymentServiceError) as unauthenticated:
                await anonymous.whoami()
            with pytest.raises(PaymentServiceError) as forbidden:
                await social.create_donation(wallet_donation(100_00))

        assert (missing.value.status, missing.value.code) == (404, "payment_not_found")
        assert (invalid.value.status, invalid.value.code) == (422, "validation_failed")
        assert [e["field"] for e in invalid.value.extra["errors"]] == ["streamer_id"]
        assert (unauthenticated.value.status, unauthenticated.value.code) == (401, "invalid_token")
        assert (forbidden.value.status, forbidden.value.code) == (403, "insufficient_scope")


class TestRetriesAgainstTheApp:
    async def test_a_key_held_by_a_running_request_is_retried_until_it_is_free(self, clients: Clients) -> None:
        body = referral("req-held")
        async with clients.resources.sessionmaker() as holder:
            await idempotency.claim(  # the "first request": its transaction is still open
                holder,
                principal="service:social",
                key="held-key",
                method="POST",
                path="/v1/referral-payouts",
                request_fingerprint="first-request",
                now=datetime.now(UTC),
                lock_timeout=timedelta(seconds=300),
            )

            async def first_request_rolls_back() -> None:
                await holder.rollback()

            clients.sleeps.hook = first_request_rolls_back
            async with clients.social() as social:
                result = await social.request_referral_payout(body, idempotency_key="held-key")

        assert (result.status_code, result.attempts, result.value.status) == (201, 2, "completed")
        assert len(clients.sleeps.delays) == 1

    async def test_a_shedding_service_is_retried_after_retry_after_then_the_problem_is_raised(
        self, clients: Clients, settings: Settings, db: Resources
    ) -> None:
        shedding = settings.model_copy(deep=True)
        shedding.http.max_in_flight = 0  # every /v1 request is refused with 503 + Retry-After
        app = create_app(shedding, resources=db)

        async with LifespanManager(app):
            client = clients.make(clients.tokens.service("social", ["referral_payouts:write"]), app=app)
            async with client:
                with pytest.raises(PaymentServiceError) as caught:
                    await client.request_referral_payout(referral("req-shed"), idempotency_key="shed-key")

        assert (caught.value.status, caught.value.code, caught.value.attempts) == (503, "overloaded", 4)
        assert caught.value.retry_after is not None
        assert 1.0 <= caught.value.retry_after <= 30.0  # grows with the overload (see InFlightLimitMiddleware)
        assert len(clients.sleeps.delays) == 3
        assert all(1.0 <= delay <= 30.0 for delay in clients.sleeps.delays)
        async with clients.social() as social:  # nothing ran: the key is free and the request unknown
            with pytest.raises(PaymentServiceError) as unknown:
                await social.get_referral_payout("req-shed")
        assert unknown.value.code == "referral_payout_not_found"


class TestPayments:
    async def test_two_stage_payment_created_authorized_captured_in_part_and_listed(
        self, payments: PaymentsEnv
    ) -> None:
        def client(token: str) -> PaymentServiceClient:
            return PaymentServiceClient(
                "http://svc.test", token=lambda: token, http_client=payments.client, retry=RetryPolicy(max_attempts=1)
            )

        streaming = client(payments.tokens.service("streaming", ["payments:write", "payments:read"]))
        admin = client(payments.tokens.admin())
        created = await streaming.create_payment(
            PaymentCreate(
                amount=MoneyValue.of_minor(1000_00, "RUB"),
                method="bank_card",
                description="Подписка на канал",
                return_url="https://stream.example/return",
                capture=False,
                provider="yookassa",
                payer_id=VIEWER,
                metadata={"channel": STREAMER},
            )
        )
        payment = created.value
        assert payment.status == "requires_action"
        assert payment.action is not None
        assert payment.action.url is not None
        provider_id = await payments.scalar(
            "SELECT provider_payment_id FROM payment_attempts WHERE payment_id = :p", p=payment.id
        )
        waiting = asyncio.create_task(streaming.get_payment(payment.id, wait=20))  # long-poll
        limiter = limiter_of(payments.app)
        await until(lambda: limiter.parked == 1)  # it has read 'requires_action' and waits for the change
        await payments.pay("yookassa", str(provider_id), card_number=None, outcome=None)
        await payments.worker.apply_webhooks()

        authorized = await asyncio.wait_for(waiting, 15)
        captured = await admin.capture_payment(payment.id, amount=MoneyValue.of_minor(600_00, "RUB"))
        listed = await streaming.list_payments(payer_id=VIEWER, limit=5)
        with pytest.raises(PaymentServiceError) as again:
            await streaming.cancel_payment(payment.id)

        assert authorized.status == "authorized"
        assert (captured.value.status, captured.value.captured_amount.minor) == ("succeeded", 600_00)
        assert [p.id for p in listed.items] == [payment.id]
        assert listed.items[0].metadata == {"channel": STREAMER}
        assert again.value.status == 409


class TestEventsOverKafka:
    async def test_the_answers_of_client_calls_arrive_on_kafka_and_parse_to_typed_events(
        self, clients: Clients, kafka_settings: Settings
    ) -> None:
        async with clients.social() as social, clients.streaming() as streaming:
            await social.request_referral_payout(referral("req-kafka-e2e"))
            donation = (await streaming.create_donation(wallet_donation(150_00))).value
        relay = OutboxRelay(kafka_settings)

        async with running(relay.run):
            await wait_until(lambda: relay.stats.published >= 2, timeout=20, what="answers published")
            answers = await read_topic(kafka_settings, "payments.referral_payout", count=1)
            alerts = await read_topic(kafka_settings, "payments.donation", count=1)

        answer = parse_event(answers[0].headers, answers[0].value)
        alert = parse_event(alerts[0].headers, alerts[0].value)
        assert isinstance(answer.data, ReferralPayoutCompleted)
        assert (answer.data.request_id, answer.data.amount_minor, answer.partitionkey) == (
            "req-kafka-e2e",
            1500_00,
            "req-kafka-e2e",
        )
        assert answers[0].key == b"req-kafka-e2e"
        assert isinstance(alert.data, DonationProcessed)
        assert (alert.data.donation_id, alert.data.alert_seq, alert.partitionkey) == (donation.id, 1, STREAMER)
        assert alert.source == "payment-service"
