"""Refund REST endpoints (customers and services) and the administrators' review queue."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from payment_service.auth import Principal as PrincipalT
from payment_service.deps import Clock, IdempotencyClaim, Providers, Session, get_resources, require_scope
from payment_service.kit.money import Money, MoneyValue
from payment_service.models.refund import Refund
from payment_service.playtime.client import HttpPlaytimeClient
from payment_service.playtime.ports import NoPlaytime, PlaytimePort
from payment_service.refund import service as refund_service
from payment_service.refund.rules import RefundPolicy
from payment_service.refund.schemas import RefundApprove, RefundCreate, RefundList, RefundOut, RefundReject
from payment_service.refund.states import RefundDecision, RefundDestination, RefundStatus

router = APIRouter(prefix="/v1/refunds", tags=["refunds"])
admin_router = APIRouter(prefix="/v1/admin/refunds", tags=["refunds (admin)"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    403: {"description": "Token lacks the scope"},
    404: {"description": "refund_not_found, payment_not_found"},
    409: {
        "description": "payment_not_refundable, refund_exceeds_payment, refund_window_expired, "
        "refund_playtime_exceeded, refund_destination_not_allowed, refund_source_insufficient, "
        "refund_not_pending_review, idempotency_key_in_use"
    },
    422: {
        "description": "validation_failed, invalid_refund_amount, partial_refund_not_supported, idempotency_key_reused"
    },
}


async def get_playtime(request: Request) -> PlaytimePort:
    """The platform's playtime API (tests override this dependency with the emulator's client)."""
    port: PlaytimePort | None = getattr(request.app.state, "playtime", None)
    if port is None:
        resources = get_resources(request)
        settings = resources.settings.playtime
        port = HttpPlaytimeClient(settings, http=resources.http) if settings.base_url else NoPlaytime()
        request.app.state.playtime = port
    return port


async def get_policy(request: Request) -> RefundPolicy:
    return refund_service.policy_from(get_resources(request).settings.refunds)


Playtime = Annotated[PlaytimePort, Depends(get_playtime)]
Policy = Annotated[RefundPolicy, Depends(get_policy)]


def render(refund: Refund) -> RefundOut:
    """The API view of a refund."""
    return RefundOut(
        id=refund.id,
        payment_id=refund.payment_id,
        payer_id=refund.payer_id,
        status=RefundStatus(refund.status),
        amount=MoneyValue.of(Money(refund.amount_minor, refund.currency)),
        destination=RefundDestination(refund.destination),
        reason=refund.reason,
        decision=RefundDecision(refund.decision) if refund.decision else None,
        findings=list(refund.findings),
        playtime_minutes=refund.playtime_minutes,
        reviewed_by=refund.reviewed_by,
        reviewed_at=refund.reviewed_at,
        review_note=refund.review_note,
        provider=refund.provider,
        error_code=refund.error_code,
        created_at=refund.created_at,
        updated_at=refund.updated_at,
        succeeded_at=refund.succeeded_at,
    )


@router.post("", status_code=201, response_model=RefundOut, responses=_ERRORS, summary="Ask for a refund")
async def create_refund(
    body: RefundCreate,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("refunds:write"))],
    claim: IdempotencyClaim,
    providers: Providers,
    playtime: Playtime,
    policy: Policy,
    clock: Clock,
) -> RefundOut:
    """Refund a succeeded payment fully (``amount`` omitted) or partly, to the original payment
    method or to the platform wallet. A user's request is approved by the rules (14 days, under
    2 hours played, no abuse), or waits for review (``pending_review``). An approved refund comes
    back ``succeeded``, ``processing``/``unknown`` (the provider's answer is awaited), or ``failed``
    (the provider refused: a 201 so that it is replayed under the same Idempotency-Key)."""
    refund = await refund_service.request(
        session,
        principal=principal,
        data=body,
        claim=claim,
        providers=providers,
        playtime=playtime,
        policy=policy,
        clock=clock,
    )
    return render(refund)


@router.get("/{refund_id}", response_model=RefundOut, responses=_ERRORS, summary="Get a refund")
async def get_refund(
    refund_id: uuid.UUID,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("refunds:read"))],
) -> RefundOut:
    return render(await refund_service.get(session, principal=principal, refund_id=refund_id))


@router.get("", response_model=RefundList, responses=_ERRORS, summary="List refunds, newest first")
async def list_refunds(
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("refunds:read"))],
    payment_id: uuid.UUID | None = None,
    payer_id: Annotated[str | None, Query(max_length=100, description="Services and admins only")] = None,
    status: RefundStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RefundList:
    items, next_cursor = await refund_service.list_refunds(
        session,
        principal=principal,
        payer_id=payer_id,
        payment_id=payment_id,
        status=status,
        cursor=cursor,
        limit=limit,
    )
    return RefundList(items=[render(r) for r in items], next_cursor=next_cursor)


@admin_router.get("", response_model=RefundList, responses=_ERRORS, summary="The review queue, oldest first")
async def review_queue(
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("admin:refunds"))],
    status: RefundStatus | None = RefundStatus.pending_review,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> RefundList:
    items, next_cursor = await refund_service.list_refunds(
        session, principal=principal, status=status, cursor=cursor, limit=limit, oldest_first=True
    )
    return RefundList(items=[render(r) for r in items], next_cursor=next_cursor)


@admin_router.post(
    "/{refund_id}/approve", response_model=RefundOut, responses=_ERRORS, summary="Approve a refund under review"
)
async def approve_refund(
    refund_id: uuid.UUID,
    body: RefundApprove,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("admin:refunds"))],
    providers: Providers,
    clock: Clock,
) -> RefundOut:
    refund = await refund_service.approve(
        session, principal=principal, refund_id=refund_id, note=body.note, providers=providers, clock=clock
    )
    return render(refund)


@admin_router.post(
    "/{refund_id}/reject", response_model=RefundOut, responses=_ERRORS, summary="Reject a refund under review"
)
async def reject_refund(
    refund_id: uuid.UUID,
    body: RefundReject,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("admin:refunds"))],
    clock: Clock,
) -> RefundOut:
    refund = await refund_service.reject(
        session, principal=principal, refund_id=refund_id, reason=body.reason, clock=clock
    )
    return render(refund)
