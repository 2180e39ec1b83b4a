"""Worker side of donations: the Kafka consumer of the Streaming Service's donation requests and
the job that publishes alerts the post-commit fast path missed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import get_settings
from payment_service.donation import alerts
from payment_service.donation import service as donation_service
from payment_service.donation.schemas import DonationRequest
from payment_service.inbox.consumer import dispatch_by_type
from payment_service.inbox.schemas import IncomingEvent
from payment_service.inbox.service import Handler, PermanentError
from payment_service.jobs import JobContext
from payment_service.kit.clock import Clock, SystemClock
from payment_service.resources import Resources

log = structlog.get_logger(__name__)

REQUEST_TOPIC = "streaming.donation_requests"
"""Logical topic the Streaming Service publishes donation requests to."""
REQUEST_TYPE = "streaming.donation_requested"
"""CloudEvents type of a request; ``data`` is :class:`~payment_service.donation.schemas.DonationRequest`."""
PUBLISH_BATCH = 200

_clock: Clock = SystemClock()


async def handle_donation_request(session: AsyncSession, event: IncomingEvent) -> None:
    """Pay a streamer from a viewer's wallet because the Streaming Service asked (e.g. a chat
    command). The inbox makes a redelivery a no-op; the donation's ``external_ref`` (source + event
    id) makes a second request with the same id one donation too. Malformed requests and unknown
    sources go to the DLQ (PermanentError); refusals are ``donation.failed`` events."""
    settings = get_settings().donations
    if event.source not in settings.request_sources:
        raise PermanentError(f"donation requests are not accepted from {event.source!r}")
    try:
        request = DonationRequest.model_validate(event.data)
    except ValidationError as exc:
        raise PermanentError(f"invalid donation request: {exc.error_count()} errors: {exc.errors()[:3]}") from None
    try:
        donation = await donation_service.request_from_stream(
            session, source=event.source, event_id=event.id, request=request, settings=settings, now=_clock.now()
        )
    except donation_service.InvalidStreamer as exc:
        raise PermanentError(exc.detail) from None
    log.info("donation_requested", donation_id=str(donation.id), status=str(donation.status), request_id=event.id)


CONSUMERS: Mapping[str, Handler] = {REQUEST_TOPIC: dispatch_by_type({REQUEST_TYPE: handle_donation_request})}
"""Topic → handler, listed in ``worker.CONSUMERS``."""


def bind_publisher(resources: Resources) -> alerts.AlertPublisher:
    """Make commits through ``resources``' engine publish their alerts right after COMMIT."""
    return alerts.bind(engine=resources.engine.sync_engine, redis=resources.redis, sessionmaker=resources.sessionmaker)


async def publish_pending_alerts(ctx: JobContext) -> bool:
    """Bind this worker's post-commit publisher (first run) and publish alerts left unpublished for
    longer than ``alert_publish_grace_seconds``. True when a full batch was published."""
    publisher = bind_publisher(ctx.resources)
    grace = timedelta(seconds=ctx.settings.donations.alert_publish_grace_seconds)
    now = ctx.resources.clock.now()
    published = await donation_service.publish_pending_alerts(
        ctx.session, publisher=publisher, processed_before=now - grace, limit=PUBLISH_BATCH
    )
    if published:
        log.info("donation_alerts_published_late", count=published)
    return published >= PUBLISH_BATCH
