"""Admin endpoints for dead letters: list with a cursor, replay through the outbox."""

from __future__ import annotations

import uuid
from collections import Counter

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import Settings
from payment_service.db import transaction
from payment_service.inbox import service as inbox_service
from payment_service.inbox.consumer import EventConsumer
from payment_service.inbox.schemas import IncomingEvent
from payment_service.models.inbox import DeadLetter, InboxEvent
from payment_service.models.outbox import OutboxEvent
from payment_service.outbox import envelope
from payment_service.outbox.relay import OutboxRelay
from payment_service.resources import Resources
from tests.conftest import Tokens
from tests.outbox.helpers import binary_event, effect_rows, produce, record_effect, running, wait_until

TOPIC = "test.incoming"
URL = "/v1/admin/dead-letters"


async def make_dead_letter(resources: Resources, *, value: bytes = b'{"n": 1}', key: str = "k") -> uuid.UUID:
    headers, _ = binary_event()
    text_headers = envelope.headers_to_dict(headers)
    event = envelope.decode(text_headers, value) if value.startswith(b"{") else None
    async with transaction(resources.sessionmaker) as session:
        dead_letter_id = await inbox_service.dead_letter(
            session,
            topic=TOPIC,
            partition=0,
            offset=7,
            key=key,
            headers=text_headers,
            value=value,
            event=(
                IncomingEvent(
                    id=event.id,
                    source=event.source,
                    type=event.type,
                    data=event.data,
                    topic=TOPIC,
                    partition=0,
                    offset=7,
                    key=key,
                )
                if event
                else None
            ),
            error=RuntimeError("boom"),
            attempts=3,
        )
    assert dead_letter_id is not None
    return dead_letter_id


class TestList:
    async def test_pages_newest_first_with_a_cursor(
        self, client: httpx.AsyncClient, db: Resources, tokens: Tokens
    ) -> None:
        created = [await make_dead_letter(db) for _ in range(3)]
        auth = tokens.headers(tokens.admin(["admin:events"]))

        first = await client.get(URL, params={"limit": 2}, headers=auth)
        second = await client.get(URL, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=auth)

        assert first.status_code == 200
        assert [i["id"] for i in first.json()["items"]] == [str(created[2]), str(created[1])]
        assert [i["id"] for i in second.json()["items"]] == [str(created[0])]
        assert second.json()["next_cursor"] is None
        item = second.json()["items"][0]
        assert (item["topic"], item["offset"], item["attempts"], item["value"]) == (TOPIC, 7, 3, {"n": 1})
        assert item["error"] == "RuntimeError: boom"
        assert item["replayed_at"] is None

    async def test_filters_by_replayed_and_topic(
        self, client: httpx.AsyncClient, db: Resources, tokens: Tokens
    ) -> None:
        await make_dead_letter(db)
        auth = tokens.headers(tokens.admin(["admin:events"]))

        replayed = await client.get(URL, params={"replayed": "true"}, headers=auth)
        other_topic = await client.get(URL, params={"topic": "other"}, headers=auth)
        pending = await client.get(URL, params={"replayed": "false", "topic": TOPIC}, headers=auth)

        assert replayed.json()["items"] == []
        assert other_topic.json()["items"] == []
        assert len(pending.json()["items"]) == 1

    async def test_a_forged_cursor_is_a_400_problem(
        self, client: httpx.AsyncClient, db: Resources, tokens: Tokens
    ) -> None:
        response = await client.get(
            URL, params={"cursor": "bm9wZQ"}, headers=tokens.headers(tokens.admin(["admin:events"]))
        )

        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "invalid_cursor"

    async def test_needs_the_admin_events_scope(self, client: httpx.AsyncClient, db: Resources, tokens: Tokens) -> None:
        no_scope = await client.get(URL, headers=tokens.headers(tokens.admin(["payments:read"])))
        user = await client.get(URL, headers=tokens.headers(tokens.user()))
        anonymous = await client.get(URL)

        assert (no_scope.status_code, user.status_code, anonymous.status_code) == (403, 403, 401)

    async def test_get_one_and_404(self, client: httpx.AsyncClient, db: Resources, tokens: Tokens) -> None:
        dead_letter_id = await make_dead_letter(db)
        auth = tokens.headers(tokens.admin(["admin:events"]))

        found = await client.get(f"{URL}/{dead_letter_id}", headers=auth)
        missing = await client.get(f"{URL}/{uuid.uuid4()}", headers=auth)

        assert found.json()["id"] == str(dead_letter_id)
        assert missing.status_code == 404
        assert missing.json()["code"] == "dead_letter_not_found"


class TestReplay:
    async def test_queues_the_original_message_in_the_outbox_and_marks_it(
        self, client: httpx.AsyncClient, db: Resources, tokens: Tokens
    ) -> None:
        dead_letter_id = await make_dead_letter(db, key="pay-9")
        async with db.sessionmaker() as session:
            original = (await session.execute(select(DeadLetter).where(DeadLetter.id == dead_letter_id))).scalar_one()
        token = tokens.admin(["admin:events"])

        response = await client.post(
            f"{URL}/{dead_letter_id}/replay", headers=tokens.headers(token, key=str(uuid.uuid4()))
        )
        again = await client.post(
            f"{URL}/{dead_letter_id}/replay", headers=tokens.headers(token, key=str(uuid.uuid4()))
        )

        assert response.status_code == 202, response.text
        assert response.json()["replayed_at"] is not None
        assert response.json()["replayed_by"] == "admin:admin-1"
        assert again.status_code == 409
        assert again.json()["code"] == "dead_letter_already_replayed"
        async with db.sessionmaker() as session:
            rows = list((await session.execute(select(OutboxEvent).order_by(OutboxEvent.seq))).scalars())
        replay = rows[-1]  # rows[0] is the DLQ copy
        assert (replay.topic, replay.key, replay.payload) == (TOPIC, "pay-9", {"n": 1})
        assert replay.headers is not None
        assert replay.headers["ce_id"] == original.event_id
        assert replay.headers["x-replay-of"] == str(dead_letter_id)
        assert [r.topic for r in rows] == [TOPIC + ".dlq", TOPIC]

    async def test_unknown_and_non_json_dead_letters_are_refused(
        self, client: httpx.AsyncClient, db: Resources, tokens: Tokens
    ) -> None:
        garbage = await make_dead_letter(db, value=b"\x00not json")
        token = tokens.admin(["admin:events"])

        missing = await client.post(f"{URL}/{uuid.uuid4()}/replay", headers=tokens.headers(token, key="k1"))
        refused = await client.post(f"{URL}/{garbage}/replay", headers=tokens.headers(token, key="k2"))
        no_key = await client.post(f"{URL}/{garbage}/replay", headers=tokens.headers(token))

        assert missing.status_code == 404
        assert refused.status_code == 409
        assert refused.json()["code"] == "dead_letter_not_replayable"
        assert no_key.status_code == 400

    async def test_replayed_event_is_handled_by_the_consumer_exactly_once(
        self, client: httpx.AsyncClient, effects: Resources, kafka_settings: Settings, tokens: Tokens
    ) -> None:
        runs: Counter[str] = Counter()
        broken = True

        async def handler(session: AsyncSession, event: IncomingEvent) -> None:
            runs[event.id] += 1
            if broken:
                raise RuntimeError("downstream bug")
            await record_effect(session, event)

        event_id = str(uuid.uuid4())
        await produce(kafka_settings, TOPIC, [("wallet-1", *binary_event(event_id=event_id, data={"amount": 5}))])
        consumer = EventConsumer(kafka_settings, effects.sessionmaker, {TOPIC: handler})
        relay = OutboxRelay(kafka_settings)

        async with running(relay.run), running(consumer.run):
            await wait_until(lambda: consumer.stats.dead_lettered == 1, timeout=30, what="dead letter")
            async with effects.sessionmaker() as session:
                dead_letter_id = (await session.execute(select(DeadLetter.id))).scalar_one()
            broken = False  # the bug is fixed: replay
            response = await client.post(
                f"{URL}/{dead_letter_id}/replay",
                headers=tokens.headers(tokens.admin(["admin:events"]), key=str(uuid.uuid4())),
            )
            assert response.status_code == 202
            await wait_until(lambda: consumer.stats.processed == 1, timeout=30, what="replayed event handled")

        effects_seen = await effect_rows(effects)
        assert [(r.event_id, r.key, r.data) for r in effects_seen] == [(event_id, "wallet-1", {"amount": 5})]
        assert runs[event_id] == kafka_settings.consumer.max_attempts + 1
        async with effects.sessionmaker() as session:
            assert (await session.execute(select(InboxEvent.event_id))).scalars().all() == [event_id]
