"""Payout endpoints: the payee's own account, payouts, operators' actions, provider webhooks."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from payment_service.auth import Principal as PrincipalT
from payment_service.deps import Clock, Principal, Resources, Session, get_resources, require_scope
from payment_service.kit.money import Money, MoneyValue
from payment_service.models.payout import PayeeAccount, Payout, PayoutSource
from payment_service.payout import service as payout_service
from payment_service.payout.schemas import KycUpdate, PayeeOut, PayeeUpdate, PayoutAttemptOut, PayoutList, PayoutOut
from payment_service.payout.states import OPEN_PAYOUT, PayoutStatus
from payment_service.providers.payout_registry import PayoutRegistry
from payment_service.providers.ports import PayoutMethod

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    403: {"description": "insufficient_scope, payee_for_users_only"},
    404: {"description": "payee_not_found, payout_not_found"},
    409: {"description": "idempotency_key_in_use, payout_not_cancelable, payout_not_retryable"},
    422: {"description": "validation_failed, invalid_payout_details, invalid_schedule, amount_below_minimum"},
    503: {"description": "payout_details_unavailable (Vault), overloaded"},
}


async def get_payout_registry(request: Request) -> PayoutRegistry:
    resources = get_resources(request)
    return resources.payout_providers or resources.start_payout_providers()


PayoutProviders = Annotated[PayoutRegistry, Depends(get_payout_registry)]
AdminPayouts = Annotated[PrincipalT, Depends(require_scope(payout_service.ADMIN_SCOPE))]


def details_vault(resources: Resources) -> payout_service.DetailsVault:
    return payout_service.DetailsVault(resources.settings, resources.http)


def render_payee(payee: PayeeAccount) -> PayeeOut:
    return PayeeOut(
        user_id=payee.user_id,
        kyc_status=payee.kyc_status,
        method=PayoutMethod(payee.method) if payee.method else None,
        destination=payee.details_masked,
        min_payout=MoneyValue.of(Money(payee.min_payout_minor, payee.currency)),
        schedule=payee.schedule,
        schedule_day=payee.schedule_day,
        details_updated_at=payee.details_updated_at,
        updated_at=payee.updated_at,
    )


def render(payout: Payout) -> PayoutOut:
    """The API view of a payout (masked destination, never details)."""
    return PayoutOut(
        id=payout.id,
        user_id=payout.user_id,
        source=payout.source,
        reference=payout.reference,
        status=PayoutStatus(payout.status),
        amount=MoneyValue.of(Money(payout.amount_minor, payout.currency)),
        method=PayoutMethod(payout.method),
        destination=payout.destination_masked,
        provider=payout.provider,
        failure_code=payout.failure_code,
        failure_message=payout.failure_message,
        next_attempt_at=payout.next_attempt_at if payout.status is PayoutStatus.pending else None,
        created_at=payout.created_at,
        updated_at=payout.updated_at,
        succeeded_at=payout.succeeded_at,
        finished_at=payout.finished_at,
        attempts=[
            PayoutAttemptOut(
                id=a.id,
                number=a.number,
                provider=a.provider,
                status=a.status,
                provider_status=a.provider_status,
                failure_code=a.failure_code,
                error_code=a.error_code,
                created_at=a.created_at,
            )
            for a in payout.attempts
        ],
    )


# ---- the payee's own account --------------------------------------------------------------------

payee_router = APIRouter(prefix="/v1/payees", tags=["payouts"])


@payee_router.get("/me", response_model=PayeeOut, responses=_ERRORS, summary="My payout account")
async def get_my_payee(session: Session, principal: Principal) -> PayeeOut:
    return render_payee(await payout_service.get_payee(session, principal=principal))


@payee_router.put("/me", response_model=PayeeOut, responses=_ERRORS, summary="Set my payout method, schedule, minimum")
async def update_my_payee(
    body: PayeeUpdate, session: Session, principal: Principal, clock: Clock, resources: Resources
) -> PayeeOut:
    """Payout details are encrypted (Vault Transit) before they are stored and are never shown again:
    the answer carries only their masked form. KYC verification is set by an operator."""
    destination = payout_service.destination_from(body.details.model_dump()) if body.details else None
    payee = await payout_service.update_payee(
        session,
        principal=principal,
        destination=destination,
        schedule=body.schedule,
        schedule_day=body.schedule_day,
        min_payout=body.min_payout,
        details_vault=details_vault(resources),
        now=clock.now(),
    )
    return render_payee(payee)


# ---- payouts ------------------------------------------------------------------------------------

router = APIRouter(prefix="/v1/payouts", tags=["payouts"])


@router.get("/{payout_id}", response_model=PayoutOut, responses=_ERRORS, summary="Get a payout")
async def get_payout(payout_id: uuid.UUID, session: Session, principal: Principal) -> PayoutOut:
    """Visible to its payee and to operators with ``admin:payouts``."""
    return render(await payout_service.get(session, principal=principal, payout_id=payout_id))


# ---- operators ----------------------------------------------------------------------------------

admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])


@admin_router.get("/payouts", response_model=PayoutList, responses=_ERRORS, summary="List payouts (operators)")
async def list_all_payouts(
    session: Session,
    principal: AdminPayouts,
    clock: Clock,
    resources: Resources,
    status: Annotated[list[PayoutStatus] | None, Query()] = None,
    source: PayoutSource | None = None,
    user_id: Annotated[str | None, Query(max_length=64)] = None,
    stuck: Annotated[bool, Query(description="Only open payouts older than payouts.stuck_after_minutes")] = False,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> PayoutList:
    before = None
    statuses = status
    if stuck:
        before = clock.now() - timedelta(minutes=resources.settings.payouts.stuck_after_minutes)
        statuses = [s for s in (status or [PayoutStatus.pending, PayoutStatus.processing]) if s in OPEN_PAYOUT]
    items, next_cursor = await payout_service.list_payouts(
        session,
        user_id=user_id,
        source=source,
        statuses=statuses,
        created_before=before,
        cursor=cursor,
        limit=limit,
    )
    return PayoutList(items=[render(p) for p in items], next_cursor=next_cursor)


@admin_router.post("/payouts/{payout_id}/retry", response_model=PayoutOut, responses=_ERRORS, summary="Retry now")
async def retry_payout(
    payout_id: uuid.UUID,
    session: Session,
    principal: AdminPayouts,
    clock: Clock,
    resources: Resources,
    registry: PayoutProviders,
) -> PayoutOut:
    """A pending payout makes its next provider attempt now; a processing one asks its provider now."""
    payout = await payout_service.retry(
        session, payout_id=payout_id, registry=registry, details_vault=details_vault(resources), clock=clock.now
    )
    return render(payout)


@admin_router.post("/payouts/{payout_id}/cancel", response_model=PayoutOut, responses=_ERRORS, summary="Cancel")
async def cancel_payout(payout_id: uuid.UUID, session: Session, principal: AdminPayouts, clock: Clock) -> PayoutOut:
    """Only while no provider has the payout; the money goes back to the payee's balance."""
    payout = await payout_service.cancel(session, payout_id=payout_id, by=principal.key, now=clock.now())
    return render(payout)


@admin_router.get("/payees/{user_id}", response_model=PayeeOut, responses=_ERRORS, summary="A payee account")
async def get_payee_account(user_id: str, session: Session, principal: AdminPayouts) -> PayeeOut:
    return render_payee(await payout_service.get_payee(session, principal=principal, user_id=user_id))


@admin_router.put(
    "/payees/{user_id}/verification", response_model=PayeeOut, responses=_ERRORS, summary="Set KYC status"
)
async def set_verification(
    user_id: str, body: KycUpdate, session: Session, principal: AdminPayouts, clock: Clock, resources: Resources
) -> PayeeOut:
    payee = await payout_service.set_verification(
        session,
        user_id=user_id,
        status=body.status,
        by=principal.key,
        settings=resources.settings.payouts,
        now=clock.now(),
    )
    return render_payee(payee)


# ---- provider webhooks --------------------------------------------------------------------------

webhook_router = APIRouter(prefix="/v1/webhooks/payouts", tags=["webhooks"])


@webhook_router.post(
    "/{provider}",
    summary="Receive a payout provider notification",
    responses={
        200: {"description": "Applied (or a duplicate, or about a payout we do not know)"},
        401: {"description": "webhook_signature_invalid"},
        404: {"description": "unknown_provider"},
        503: {"description": "webhook_verification_unavailable"},
    },
)
async def receive_payout_webhook(
    provider: str,
    request: Request,
    session: Session,
    registry: PayoutProviders,
    clock: Clock,
    resources: Resources,
) -> Response:
    """Verified by the provider's own proof (YooKassa: source IP + re-fetch; bank: HMAC signature)
    and applied at once through the same function as the synchronous answer and the status sync."""
    event = await payout_service.receive_webhook(
        session,
        provider=provider,
        body=await request.body(),
        headers=dict(request.headers),
        remote_addr=request.client.host if request.client else None,
        registry=registry,
        settings=resources.settings.payouts,
        now=clock.now(),
    )
    return Response(content=event.ack_body, status_code=200, media_type="text/plain")
