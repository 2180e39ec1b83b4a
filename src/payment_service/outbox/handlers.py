"""Internal reactions to our own events: event type → handlers (cosmicpython's handler dict).

A handler here runs in the worker when the event has been published, through the same
consumer framework as foreign events (the worker subscribes to the topics of the events listed
here): it gets the inbox (no second effect on redelivery), retries with backoff, and the DLQ.
It runs in its own transaction, after the emitting transaction committed — never inside it.

Handlers take ``(session, event: IncomingEvent)``, reload what they need by the ids in
``event.data``, and must be safe to run again. Register them in ``HANDLERS``::

    HANDLERS = {
        "payment.succeeded": (fiscal_receipt_tasks.issue, notification_tasks.notify_merchant),
    }
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.inbox.consumer import dispatch_by_type
from payment_service.inbox.schemas import IncomingEvent
from payment_service.inbox.service import Handler
from payment_service.outbox import events

HANDLERS: Mapping[str, Sequence[Handler]] = MappingProxyType({})
"""Event type → the internal handlers it triggers, in order."""


def _chain(handlers: Sequence[Handler]) -> Handler:
    async def run_all(session: AsyncSession, event: IncomingEvent) -> None:
        for handler in handlers:
            await handler(session, event)

    return run_all


def consumers(handlers: Mapping[str, Sequence[Handler]] | None = None) -> dict[str, Handler]:
    """Topic → handler for the worker's consumer, built from ``handlers`` (default ``HANDLERS``).

    Each topic's handler routes on the event type; types without handlers are marked seen and
    skipped. Raises ``events.UnknownEvent`` for a type that is not in the catalogue.
    """
    table = HANDLERS if handlers is None else handlers
    by_topic: dict[str, dict[str, Handler]] = defaultdict(dict)
    for event_type, chain in table.items():
        if chain:
            by_topic[events.get(event_type).topic][event_type] = _chain(tuple(chain))
    return {topic: dispatch_by_type(routes) for topic, routes in by_topic.items()}
