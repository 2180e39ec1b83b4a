"""Referral payout endpoints for the Social Service, and operators' retry/cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from payment_service.auth import Principal as PrincipalT
from payment_service.deps import Clock, Principal, Resources, Session, require_scope
from payment_service.kit.money import Money, MoneyValue
from payment_service.models.payout import Payout, ReferralPayout
from payment_service.payout import service as payout_service
from payment_service.payout.endpoints import AdminPayouts, PayoutProviders, details_vault
from payment_service.payout.states import PayoutStatus
from payment_service.referral_payout import service as referral_service
from payment_service.referral_payout.schemas import ReferralPayoutCreate, ReferralPayoutOut

router = APIRouter(prefix="/v1/referral-payouts", tags=["referral payouts"])
admin_router = APIRouter(prefix="/v1/admin/referral-payouts", tags=["admin"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    403: {"description": "insufficient_scope"},
    404: {"description": "referral_payout_not_found"},
    409: {"description": "referral_request_conflict, idempotency_key_in_use, referral_payout_not_actionable"},
    422: {"description": "validation_failed, invalid_amount"},
}
RequestId = Annotated[str, Path(min_length=1, max_length=128)]


def render(row: ReferralPayout, payout: Payout | None) -> ReferralPayoutOut:
    return ReferralPayoutOut(
        request_id=row.request_id,
        status=row.status,
        user_id=row.user_id,
        amount=MoneyValue.of(Money(row.amount_minor, row.currency)),
        reason=row.reason,
        referral_id=row.referral_id,
        method=row.method,
        failure_code=row.failure_code,
        payout_id=row.payout_id,
        payout_status=PayoutStatus(payout.status) if payout is not None else None,
        created_at=row.created_at,
        answered_at=row.answered_at,
    )


@router.post("", status_code=201, response_model=ReferralPayoutOut, responses=_ERRORS, summary="Request a payout")
async def request_payout(
    body: ReferralPayoutCreate,
    response: Response,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("referral_payouts:write"))],
    clock: Clock,
    resources: Resources,
    registry: PayoutProviders,
) -> ReferralPayoutOut:
    """Idempotent by ``request_id``: a repeat (any Idempotency-Key) returns the same request with
    200. The outcome arrives as ONE ``referral_payout.completed``/``.failed`` event (topic
    ``payments.referral_payout``) and is readable with ``GET /v1/referral-payouts/{request_id}``;
    a refusal is a ``failed`` request (201), not an error."""
    amount = payout_service.parse_money(body.amount, currency=body.amount.currency)
    row, created = await referral_service.request(
        session,
        req=referral_service.ReferralRequest(
            request_id=body.request_id,
            user_id=body.user_id,
            amount=amount,
            reason=body.reason,
            referral_id=body.referral_id,
            method=body.method,
        ),
        requested_by=principal.key,
        router=registry,
        settings=resources.settings,
        now=clock.now(),
    )
    if not created:
        response.status_code = 200
    payout = await payout_service.find(session, row.payout_id) if row.payout_id else None
    return render(row, payout)


@router.get("/{request_id}", response_model=ReferralPayoutOut, responses=_ERRORS, summary="Status of a request")
async def get_request(request_id: RequestId, session: Session, principal: Principal) -> ReferralPayoutOut:
    """For the Social Service (``referral_payouts:read``) and operators (``admin:payouts``)."""
    row, payout = await referral_service.get(session, principal=principal, request_id=request_id)
    return render(row, payout)


@admin_router.post("/{request_id}/retry", response_model=ReferralPayoutOut, responses=_ERRORS, summary="Retry now")
async def retry(
    request_id: RequestId,
    session: Session,
    principal: AdminPayouts,
    clock: Clock,
    resources: Resources,
    registry: PayoutProviders,
) -> ReferralPayoutOut:
    """Make the request's payout try its provider now (pending) or ask the provider now (processing)."""
    payout_id = await referral_service.payout_of(session, request_id=request_id)
    await payout_service.retry(
        session, payout_id=payout_id, registry=registry, details_vault=details_vault(resources), clock=clock.now
    )
    row, payout = await referral_service.get(session, principal=principal, request_id=request_id)
    return render(row, payout)


@admin_router.post("/{request_id}/cancel", response_model=ReferralPayoutOut, responses=_ERRORS, summary="Cancel")
async def cancel(request_id: RequestId, session: Session, principal: AdminPayouts, clock: Clock) -> ReferralPayoutOut:
    """Cancel the request's payout while no provider has it: the Social Service gets a ``failed``
    answer with ``canceled`` and nothing stays credited."""
    payout_id = await referral_service.payout_of(session, request_id=request_id)
    await payout_service.cancel(session, payout_id=payout_id, by=principal.key, now=clock.now())
    row, payout = await referral_service.get(session, principal=principal, request_id=request_id)
    return render(row, payout)
