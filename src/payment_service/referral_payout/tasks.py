"""Worker side of referral payouts: the Kafka consumer of the Social Service's payout requests."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import get_settings
from payment_service.inbox.consumer import dispatch_by_type
from payment_service.inbox.schemas import IncomingEvent
from payment_service.inbox.service import Handler, PermanentError
from payment_service.kit.clock import Clock, SystemClock
from payment_service.kit.money import Money, UnknownCurrency
from payment_service.providers.payout_registry import SettingsRouter
from payment_service.referral_payout import service as referral_service
from payment_service.referral_payout.schemas import ReferralPayoutRequested

log = structlog.get_logger(__name__)

REQUEST_TOPIC = "social.referral_payout_requests"
"""Logical topic the Social Service publishes referral payout requests to."""
REQUEST_TYPE = "social.referral_payout_requested"
"""CloudEvents type of a request; ``data`` is :class:`~payment_service.referral_payout.schemas.ReferralPayoutRequested`."""

_clock: Clock = SystemClock()


async def handle_referral_request(session: AsyncSession, event: IncomingEvent) -> None:
    """Carry out a referral payout the Social Service asked for over Kafka.

    The inbox makes a redelivery of the event a no-op; the request's ``request_id`` (default: the
    CloudEvents id) makes the same request arriving again — over Kafka or REST — one payout and
    one answer. Unknown sources, malformed data and a request id reused with other content go to
    the DLQ (PermanentError); refusals are ``referral_payout.failed`` answers.
    """
    settings = get_settings()
    if event.source not in settings.payouts.referral_sources:
        raise PermanentError(f"referral payout requests are not accepted from {event.source!r}")
    try:
        data = ReferralPayoutRequested.model_validate(event.data)
        amount = Money(data.amount_minor, data.currency)
    except ValidationError as exc:
        raise PermanentError(
            f"invalid referral payout request: {exc.error_count()} errors: {exc.errors()[:3]}"
        ) from None
    except UnknownCurrency as exc:
        raise PermanentError(f"invalid referral payout request: {exc}") from None
    try:
        row, created = await referral_service.request(
            session,
            req=referral_service.ReferralRequest(
                request_id=data.request_id or event.id,
                user_id=data.user_id,
                amount=amount,
                reason=data.reason,
                referral_id=data.referral_id,
                method=data.method,
            ),
            requested_by=f"kafka:{event.source}",
            router=SettingsRouter(settings.payouts.providers),
            settings=settings,
            now=_clock.now(),
        )
    except referral_service.ReferralRequestConflict as exc:
        raise PermanentError(exc.detail) from None
    log.info("referral_payout_requested", request_id=row.request_id, status=str(row.status), new=created)


CONSUMERS: Mapping[str, Handler] = {REQUEST_TOPIC: dispatch_by_type({REQUEST_TYPE: handle_referral_request})}
"""Topic → handler, listed in ``worker.CONSUMERS``."""
