"""Donation REST endpoints: parse, authorize, call one service function, return."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Response
from pydantic import ValidationError

from payment_service.auth import Principal as PrincipalT
from payment_service.deps import Clock, IdempotencyClaim, Principal, Providers, Resources, Session, require_scope
from payment_service.donation import alerts
from payment_service.donation import service as donation_service
from payment_service.donation import tasks as donation_tasks
from payment_service.donation.schemas import DonationCreate, DonationOut, DonationPaymentOut, OverlayTokenOut
from payment_service.kit.idempotency import StoredResponse
from payment_service.kit.money import Money, MoneyValue
from payment_service.middleware import FastRequest
from payment_service.models.donation import Donation, DonationSource, DonationStatus
from payment_service.models.payment import Payment
from payment_service.outbox import service as outbox_service
from payment_service.payment.schemas import CustomerActionOut
from payment_service.payment.states import PaymentStatus
from payment_service.resources import Resources as ResourcesT

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1/donations", tags=["donations"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    402: {"description": "insufficient_funds (wallet donations; nothing is recorded)"},
    403: {"description": "insufficient_scope, donor_not_allowed, overlay_token_for_users_only"},
    404: {"description": "donation_not_found"},
    409: {"description": "idempotency_key_in_use"},
    422: {"description": "validation_failed, invalid_amount, self_donation, invalid_streamer"},
    503: {"description": "no_provider_available, overloaded"},
}


def render(donation: Donation, payment: Payment | None = None) -> DonationOut:
    """The API view of a donation (amounts as decimal strings)."""
    cur = donation.currency
    return DonationOut(
        id=donation.id,
        status=DonationStatus(donation.status),
        streamer_id=donation.streamer_id,
        donor_id=donation.donor_id,
        source=DonationSource(donation.source),
        method=donation.method,
        amount=MoneyValue.of(Money(donation.amount_minor, cur)),
        fee=MoneyValue.of(Money(donation.fee_minor, cur)),
        streamer_amount=MoneyValue.of(Money(donation.streamer_minor, cur)),
        display_name=donation.display_name,
        message=donation.message,
        alert_id=donation.alert_seq,
        failure_code=donation.failure_code,
        payment=DonationPaymentOut(
            id=payment.id,
            status=PaymentStatus(payment.status),
            action=CustomerActionOut(**payment.action) if payment.action else None,
        )
        if payment is not None
        else None,
        created_at=donation.created_at,
        processed_at=donation.processed_at,
    )


@router.post("", status_code=201, response_model=DonationOut, responses=_ERRORS, summary="Donate to a streamer")
async def create_donation(
    body: DonationCreate,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("donations:write"))],
    claim: IdempotencyClaim,
    providers: Providers,
    clock: Clock,
    resources: Resources,
) -> DonationOut:
    """Donate from the wallet (``method: wallet``: processed at once, or 402 with nothing recorded)
    or through a payment (``status: pending`` with the payment's customer action — redirect, 3-DS,
    SBP QR — until the payment succeeds; a declined payment is a 201 with status ``failed``)."""
    donation_tasks.bind_publisher(resources)
    donation, payment = await donation_service.create(
        session,
        principal=principal,
        data=body,
        claim=claim,
        providers=providers,
        clock=clock,
        settings=resources.settings.donations,
    )
    return render(donation, payment)


CREATED_HEADERS = {"content-type": "application/json"}


def _body(donation: Donation) -> bytes:
    return render(donation).model_dump_json().encode()


async def create_donation_at_once(request: FastRequest, resources: ResourcesT) -> StoredResponse | str:
    """``POST /v1/donations`` for a wallet donation under a new key, as one statement (the
    unit-of-work middleware tries it first; a returned reason → the route above runs as usual)."""
    if not request.principal.has("donations:write"):
        return "insufficient_scope"
    if (request.content_type or "").split(";", 1)[0].strip().lower() != "application/json":
        return "not_json"
    try:
        data = DonationCreate.model_validate_json(request.body)
    except ValidationError:
        return "validation_failed"
    publisher = donation_tasks.bind_publisher(resources)
    done = await donation_service.create_from_wallet_at_once(
        request.acquire,
        principal=request.principal,
        data=data,
        request=request.keyed,
        clock=resources.clock,
        settings=resources.settings.donations,
        render=_body,
        response_status=201,
        response_headers=CREATED_HEADERS,
    )
    if isinstance(done, str):
        return done
    if resources.waker is not None:
        resources.waker.wake((outbox_service.WAKE_CHANNEL,))
    try:
        publisher.schedule([alerts.CommittedAlert.of(done.donation)])
    except Exception as exc:  # committed: the worker publishes what the process did not
        log.warning("donation_alert_schedule_failed", error=repr(exc), donation_id=str(done.donation.id))
    return StoredResponse(status=201, headers=CREATED_HEADERS, body=done.body)


@router.post(
    "/overlay-token",
    status_code=201,
    response_model=OverlayTokenOut,
    responses=_ERRORS,
    summary="Rotate the streamer's overlay token",
)
async def rotate_overlay_token(
    response: Response,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("donations:write"))],
    clock: Clock,
) -> OverlayTokenOut:
    """Issue a new token for the alert WebSocket of the calling streamer (the old one stops working).
    The token is in the ``Overlay-Token`` response header of this response only."""
    rotated = await donation_service.rotate_overlay_token(session, principal=principal, now=clock.now())
    response.headers["Overlay-Token"] = rotated.token
    response.headers["Cache-Control"] = "no-store"
    return OverlayTokenOut(streamer_id=rotated.streamer_id, token_hint=rotated.token[:8], rotated_at=rotated.rotated_at)


@router.get("/{donation_id}", response_model=DonationOut, responses=_ERRORS, summary="Get a donation")
async def get_donation(donation_id: uuid.UUID, session: Session, principal: Principal) -> DonationOut:
    """Visible to its donor and its streamer (the streamer does not see the donor's payment)."""
    donation = await donation_service.get(session, principal=principal, donation_id=donation_id)
    payment = await donation_service.payment_of(session, principal=principal, donation=donation)
    return render(donation, payment)
