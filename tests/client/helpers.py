"""Helpers that run the server's own Kafka-side code on client-made or client-read messages."""

from __future__ import annotations

import asyncpg

from payment_service import worker
from payment_service.client import OutgoingMessage
from payment_service.config import Settings
from payment_service.db import asyncpg_dsn, transaction
from payment_service.inbox import service as inbox_service
from payment_service.inbox.schemas import IncomingEvent
from payment_service.outbox import envelope
from payment_service.outbox import repository as outbox_repository
from payment_service.outbox.relay import OutboxRelay
from payment_service.resources import Resources

Message = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]


async def relay_messages(settings: Settings) -> list[Message]:
    """The Kafka messages (topic, key, value, headers) the relay would send for every unpublished
    outbox row, in order, built by the relay's own code; nothing is published or marked."""
    relay = OutboxRelay(settings)
    conn = await asyncpg.connect(asyncpg_dsn(settings.db.url.get_secret_value()))
    try:
        async with conn.transaction():
            rows = await outbox_repository.claim_batch(conn, limit=1000)
            messages = [relay._message(row) for row in rows]
    finally:
        await conn.close()
    return messages


async def deliver(resources: Resources, message: OutgoingMessage) -> bool:
    """Hand a client-built message to the worker's consumer for its topic, as the consumer loop
    does after reading it from Kafka: decode, then inbox row + handler in one transaction."""
    headers = envelope.headers_to_dict(message.headers)
    decoded = envelope.decode(headers, message.value)
    event = IncomingEvent(
        id=decoded.id,
        source=decoded.source,
        type=decoded.type,
        data=decoded.data,
        topic=message.topic,
        partition=0,
        offset=0,
        key=message.key.decode(),
        time=decoded.time,
        subject=decoded.subject,
        dataversion=decoded.dataversion,
        correlation_id=decoded.correlationid,
        headers=headers,
    )
    async with transaction(resources.sessionmaker) as session:
        return await inbox_service.process(session, event, worker.CONSUMERS[message.topic])
