"""Donation service and worker side against the real Postgres, Redis and Tansu: clawbacks (the
ledger design for refunds and chargebacks), Streaming Service requests over Kafka, and the
post-commit / catch-up publication of alerts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from payment_service.auth import USER_SCOPES, Principal, PrincipalKind
from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.donation import alerts
from payment_service.donation import service as donation_service
from payment_service.donation import tasks as donation_tasks
from payment_service.donation.schemas import DonationRequest
from payment_service.inbox import service as inbox_service
from payment_service.inbox.consumer import EventConsumer
from payment_service.inbox.schemas import IncomingEvent
from payment_service.inbox.service import PermanentError
from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.models.donation import DonationStatus
from payment_service.resources import Resources
from payment_service.worker import CONSUMERS, JobContext
from tests.donation.conftest import drain_publications, fund_wallet
from tests.outbox.helpers import binary_event, produce, running, wait_until

STREAMER = "streamer-svc"
VIEWER = "viewer-svc"
SOURCE = "streaming-service"


def rub(kopecks: int) -> Money:
    return Money(kopecks, "RUB")


@pytest.fixture
async def clean(db: Resources) -> AsyncIterator[Resources]:
    """The database, with the background publications of the test finished before it is emptied."""
    try:
        yield db
    finally:
        await drain_publications(db)


async def balance(resources: Resources, spec: accounts.AccountSpec) -> int:
    async with resources.sessionmaker() as session:
        return (await ledger_service.balance(session, spec)).posted.amount_minor


async def request(
    resources: Resources,
    settings: Settings,
    *,
    kopecks: int = 100_00,
    event_id: str | None = None,
    viewer: str = VIEWER,
    streamer: str = STREAMER,
) -> Any:
    async with transaction(resources.sessionmaker) as session:
        return await donation_service.request_from_stream(
            session,
            source=SOURCE,
            event_id=event_id or str(uuid.uuid4()),
            request=DonationRequest(
                viewer_id=viewer, streamer_id=streamer, amount_minor=kopecks, currency="RUB", message="gg"
            ),
            settings=settings.donations,
            now=datetime.now(UTC),
        )


async def outbox_payloads(resources: Resources, type_: str) -> list[dict[str, Any]]:
    async with resources.engine.connect() as conn:
        rows = await conn.execute(text("SELECT payload FROM outbox_events WHERE type = :t ORDER BY seq"), {"t": type_})
        return [r[0] for r in rows]


class TestClawback:
    async def clawback(self, resources: Resources, donation_id: uuid.UUID, kopecks: int, kind: str, key: str) -> Any:
        async with transaction(resources.sessionmaker) as session:
            return await donation_service.clawback(
                session,
                donation_id=donation_id,
                amount=rub(kopecks),
                kind=donation_service.ClawbackKind(kind),
                idempotency_key=key,
                now=datetime.now(UTC),
            )

    async def test_a_partial_refund_takes_back_streamer_share_and_fee_in_proportion(
        self, clean: Resources, settings: Settings
    ) -> None:
        await fund_wallet(clean, VIEWER, 100_00)
        donation = await request(clean, settings, kopecks=100_00)  # fee 5.00, streamer 95.00

        first = await self.clawback(clean, donation.id, 50_00, "refund", "refund-1")
        again = await self.clawback(clean, donation.id, 50_00, "refund", "refund-1")

        assert again.id == first.id
        assert await balance(clean, accounts.user_wallet(VIEWER)) == 50_00
        assert await balance(clean, accounts.streamer_balance(STREAMER)) == 95_00 - 47_50
        assert await balance(clean, accounts.platform_fees()) == 5_00 - 2_50
        async with clean.sessionmaker() as session:
            reloaded = await donation_service.get(session, principal=_user(VIEWER), donation_id=donation.id)
        assert reloaded.clawed_back_minor == 50_00

    async def test_more_than_the_donation_is_refused(self, clean: Resources, settings: Settings) -> None:
        await fund_wallet(clean, VIEWER, 100_00)
        donation = await request(clean, settings, kopecks=100_00)
        await self.clawback(clean, donation.id, 60_00, "refund", "r-1")

        with pytest.raises(donation_service.ClawbackExceedsDonation):
            await self.clawback(clean, donation.id, 40_01, "refund", "r-2")

    async def test_a_refund_cannot_take_what_the_streamer_no_longer_has_but_a_chargeback_books_a_debt(
        self, clean: Resources, settings: Settings
    ) -> None:
        await fund_wallet(clean, VIEWER, 100_00)
        donation = await request(clean, settings, kopecks=100_00)
        async with transaction(clean.sessionmaker) as session:  # the streamer was paid out 90.00
            await ledger_service.transfer(
                session,
                postings=[Posting(accounts.streamer_balance(STREAMER), accounts.external_world(), rub(90_00))],
                idempotency_key="payout-1",
                reference="payout:1",
                reason="payout",
                now=datetime.now(UTC),
            )

        with pytest.raises(donation_service.ClawbackExceedsBalance):
            await self.clawback(clean, donation.id, 100_00, "refund", "refund-all")
        await self.clawback(clean, donation.id, 100_00, "chargeback", "chargeback-all")

        assert await balance(clean, accounts.streamer_balance(STREAMER)) == 0
        assert await balance(clean, accounts.streamer_receivable(STREAMER)) == 90_00  # the streamer owes this
        assert await balance(clean, accounts.platform_fees()) == 0
        assert await balance(clean, accounts.user_wallet(VIEWER)) == 100_00

    async def test_a_failed_donation_cannot_be_clawed_back(self, clean: Resources, settings: Settings) -> None:
        donation = await request(clean, settings, kopecks=100_00)  # empty wallet: failed

        with pytest.raises(donation_service.DonationNotClawable):
            await self.clawback(clean, donation.id, 10_00, "refund", "x")


def _user(subject: str) -> Principal:
    return Principal(PrincipalKind.user, subject, USER_SCOPES)


def incoming(event_id: str, data: dict[str, Any], *, source: str = SOURCE) -> IncomingEvent:
    return IncomingEvent(
        id=event_id,
        source=source,
        type=donation_tasks.REQUEST_TYPE,
        data=data,
        topic=donation_tasks.REQUEST_TOPIC,
        partition=0,
        offset=0,
        key=STREAMER,
    )


REQUEST = {"viewer_id": VIEWER, "streamer_id": STREAMER, "amount_minor": 50_00, "currency": "RUB", "message": "hi"}


class TestStreamingRequests:
    async def test_the_same_request_delivered_twice_is_one_donation(self, clean: Resources) -> None:
        await fund_wallet(clean, VIEWER, 100_00)
        handler = CONSUMERS[donation_tasks.REQUEST_TOPIC]

        for _ in range(2):
            async with transaction(clean.sessionmaker) as session:
                await inbox_service.process(session, incoming("req-1", REQUEST), handler)
        async with transaction(clean.sessionmaker) as session:  # even past the inbox: one per request id
            await donation_tasks.handle_donation_request(session, incoming("req-1", REQUEST))

        processed = await outbox_payloads(clean, "donation.processed")
        assert [(p["request_id"], p["amount_minor"], p["alert_seq"]) for p in processed] == [("req-1", 50_00, 1)]
        assert await balance(clean, accounts.user_wallet(VIEWER)) == 50_00

    async def test_a_short_wallet_is_a_failed_donation_not_an_error(self, clean: Resources) -> None:
        async with transaction(clean.sessionmaker) as session:
            await donation_tasks.handle_donation_request(session, incoming("req-2", REQUEST))

        failed = await outbox_payloads(clean, "donation.failed")
        assert [(f["request_id"], f["reason"]) for f in failed] == [("req-2", "insufficient_funds")]
        async with clean.engine.connect() as conn:
            status, seq = (await conn.execute(text("SELECT status, alert_seq FROM donations"))).one()
            counters = (await conn.execute(text("SELECT count(*) FROM donation_streamers"))).scalar()
        assert (status, seq, counters) == (DonationStatus.failed, None, 0)  # the alert log has no gap

    @pytest.mark.parametrize(
        ("data", "source"),
        [
            ({**REQUEST, "amount_minor": "lots"}, SOURCE),
            ({**REQUEST, "streamer_id": "no spaces allowed"}, SOURCE),
            (REQUEST, "social-service"),
        ],
    )
    async def test_malformed_requests_and_unknown_sources_go_to_the_dead_letter_queue(
        self, clean: Resources, data: dict[str, Any], source: str
    ) -> None:
        with pytest.raises(PermanentError):
            async with transaction(clean.sessionmaker) as session:
                await donation_tasks.handle_donation_request(session, incoming("bad", data, source=source))

    async def test_through_kafka_end_to_end(self, clean: Resources, kafka_settings: Settings) -> None:
        await fund_wallet(clean, VIEWER, 100_00)
        event_id = str(uuid.uuid4())
        headers, value = binary_event(event_id=event_id, source=SOURCE, type=donation_tasks.REQUEST_TYPE, data=REQUEST)
        await produce(kafka_settings, donation_tasks.REQUEST_TOPIC, [(STREAMER, headers, value)] * 2)
        consumer = EventConsumer(kafka_settings, clean.sessionmaker, dict(CONSUMERS))

        async with running(consumer.run):
            await wait_until(
                lambda: consumer.stats.processed + consumer.stats.duplicates >= 2, timeout=30, what="both deliveries"
            )

        assert (consumer.stats.processed, consumer.stats.duplicates, consumer.stats.dead_lettered) == (1, 1, 0)
        assert [p["request_id"] for p in await outbox_payloads(clean, "donation.processed")] == [event_id]


class TestAlertPublication:
    async def subscribe(self, resources: Resources) -> Any:
        pubsub = resources.redis.pubsub()
        await pubsub.subscribe(alerts.channel(resources.redis, STREAMER))
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
        return pubsub

    async def messages(self, pubsub: Any, *, wait: float = 0.5) -> list[dict[str, Any]]:
        got = []
        while (message := await pubsub.get_message(timeout=wait)) is not None:
            got.append(orjson.loads(message["data"]))
        return got

    async def test_after_commit_the_alert_is_published_once(self, clean: Resources, settings: Settings) -> None:
        donation_tasks.bind_publisher(clean)
        await fund_wallet(clean, VIEWER, 100_00)
        pubsub = await self.subscribe(clean)
        try:
            donation = await request(clean, settings, kopecks=10_00)
            await drain_publications(clean)
            got = await self.messages(pubsub)
        finally:
            await pubsub.aclose()

        assert [(m["type"], m["id"], m["donation_id"]) for m in got] == [("alert", 1, str(donation.id))]
        async with clean.engine.connect() as conn:
            assert (await conn.execute(text("SELECT alert_published_at IS NOT NULL FROM donations"))).scalar()

    async def process_then_fail(self, resources: Resources, settings: Settings) -> None:
        async with transaction(resources.sessionmaker) as session:
            await donation_service.request_from_stream(
                session,
                source=SOURCE,
                event_id="rolled-back",
                request=DonationRequest(viewer_id=VIEWER, streamer_id=STREAMER, amount_minor=10_00, currency="RUB"),
                settings=settings.donations,
                now=datetime.now(UTC),
            )
            raise RuntimeError("the request failed after processing")

    async def test_a_rolled_back_donation_publishes_nothing(self, clean: Resources, settings: Settings) -> None:
        donation_tasks.bind_publisher(clean)
        await fund_wallet(clean, VIEWER, 100_00)
        pubsub = await self.subscribe(clean)
        try:
            with pytest.raises(RuntimeError, match="after processing"):
                await self.process_then_fail(clean, settings)
            await drain_publications(clean)
            got = await self.messages(pubsub)
        finally:
            await pubsub.aclose()

        assert got == []

    async def test_the_worker_job_publishes_what_no_process_published(
        self, clean: Resources, settings: Settings
    ) -> None:
        await fund_wallet(clean, VIEWER, 100_00)
        engine = clean.engine.sync_engine
        publisher = alerts._PUBLISHERS.pop(engine, None)  # as if the process died right after COMMIT
        try:
            await request(clean, settings, kopecks=10_00)
        finally:
            if publisher is not None:
                alerts._PUBLISHERS[engine] = publisher
        own = settings.model_copy(deep=True)
        own.donations.alert_publish_grace_seconds = 0
        pubsub = await self.subscribe(clean)
        await asyncio.sleep(0.01)  # processed_at lies in the past of the job's clock
        try:
            for _ in range(2):  # the second run finds nothing left
                async with transaction(clean.sessionmaker) as session:
                    ctx = JobContext(session=session, now=datetime.now(UTC), settings=own, resources=clean)
                    await donation_tasks.publish_pending_alerts(ctx)
            got = await self.messages(pubsub)
        finally:
            await pubsub.aclose()

        assert [m["id"] for m in got] == [1]
