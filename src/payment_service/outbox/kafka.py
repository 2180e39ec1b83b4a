"""Kafka clients for the relay and the consumers, built from ``settings.kafka``.

Topic names in the code and in the database are *logical* (``payments.payment``); the physical
Kafka topic is ``settings.kafka.topic_prefix + logical`` (an environment prefix, e.g. ``stage.``).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from payment_service.config import KafkaSettings

log = structlog.get_logger(__name__)

DLQ_SUFFIX = ".dlq"
DEFAULT_PARTITIONS = 3
_TOPIC_EXISTS = 36


def physical(settings: KafkaSettings, topic: str) -> str:
    return settings.topic_prefix + topic


def logical(settings: KafkaSettings, topic: str) -> str:
    return topic.removeprefix(settings.topic_prefix) if settings.topic_prefix else topic


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


def producer(settings: KafkaSettings, *, client_suffix: str = "relay") -> AIOKafkaProducer:
    """acks=all; the idempotent producer when ``enable_idempotence`` (real Kafka, not Tansu)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-{client_suffix}",
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        request_timeout_ms=settings.request_timeout_ms,
        max_batch_size=256 * 1024,
        linger_ms=0,
    )


def consumer(settings: KafkaSettings, topics: Iterable[str], *, group_id: str) -> AIOKafkaConsumer:
    """Manual offset commits (after the database transaction), from the earliest offset."""
    return AIOKafkaConsumer(
        *[physical(settings, t) for t in topics],
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-consumer",
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=200,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
        metadata_max_age_ms=10_000,
    )


async def ensure_topics(
    settings: KafkaSettings, topics: Iterable[str], *, partitions: int = DEFAULT_PARTITIONS
) -> None:
    """Create missing topics (development and tests; production provisions topics itself).

    Best effort: a broker that is down or refuses is logged, not raised — producing and
    subscribing will retry on their own.
    """
    wanted = sorted({physical(settings, t) for t in topics})
    if not wanted:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
            )
            for name, code, message in getattr(response, "topic_errors", []):
                if code not in (0, _TOPIC_EXISTS):
                    log.warning("kafka_topic_create_failed", topic=name, code=code, message=message)
    except (KafkaError, OSError) as exc:
        log.warning("kafka_ensure_topics_failed", error=repr(exc))
    finally:
        await admin.close()
