"""Payment REST endpoints: parse, authorize, call one service function, return."""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from payment_service.auth import Principal as PrincipalT
from payment_service.deps import (
    Clock,
    IdempotencyClaim,
    Listener,
    Park,
    Providers,
    ReadSession,
    Session,
    client_gone,
    require_scope,
)
from payment_service.kit.money import Money, MoneyValue
from payment_service.models.payment import Payment
from payment_service.payment import service as payment_service
from payment_service.payment.schemas import (
    AttemptOut,
    CardOut,
    CustomerActionOut,
    PaymentCancel,
    PaymentCapture,
    PaymentCreate,
    PaymentList,
    PaymentOut,
)
from payment_service.payment.states import PaymentStatus

router = APIRouter(prefix="/v1/payments", tags=["payments"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    403: {"description": "Token lacks the scope"},
    404: {"description": "payment_not_found"},
    409: {"description": "idempotency_key_in_use, order_reference_in_use, payment_not_capturable, ..."},
    422: {"description": "validation_failed, idempotency_key_reused, invalid_amount"},
    503: {"description": "no_provider_available, overloaded"},
}


def render(payment: Payment) -> PaymentOut:
    """The API view of a payment (amounts as decimal strings, never a card number)."""
    cur = payment.currency
    return PaymentOut(
        id=payment.id,
        status=PaymentStatus(payment.status),
        amount=MoneyValue.of(Money(payment.amount_minor, cur)),
        captured_amount=MoneyValue.of(Money(payment.captured_minor, cur)),
        refunded_amount=MoneyValue.of(Money(payment.refunded_minor, cur)),
        method=payment.method,
        capture_mode=str(payment.capture_mode),
        purpose=str(payment.purpose),
        description=payment.description,
        order_reference=payment.order_reference,
        metadata={k: v for k, v in payment.metadata_.items() if k != "payer_phone"},
        payer_id=payment.payer_id,
        provider=payment.provider,
        action=CustomerActionOut(**payment.action) if payment.action else None,
        decline_code=payment.decline_code,
        failure_message=payment.failure_message,
        card=CardOut(scheme=payment.card_scheme, last4=payment.card_last4)
        if payment.card_last4 and payment.card_scheme
        else None,
        expires_at=payment.expires_at,
        capture_before=payment.capture_before,
        created_at=payment.created_at,
        updated_at=payment.updated_at,
        attempts=[
            AttemptOut(
                id=a.id,
                number=a.number,
                provider=a.provider,
                status=a.status,
                decline_code=a.decline_code,
                error_code=a.error_code,
                failover=a.failover,
                created_at=a.created_at,
            )
            for a in payment.attempts
        ],
    )


@router.post("", status_code=201, response_model=PaymentOut, responses=_ERRORS, summary="Create a payment")
async def create_payment(
    body: PaymentCreate,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("payments:write"))],
    claim: IdempotencyClaim,
    providers: Providers,
    clock: Clock,
) -> PaymentOut:
    """Create a payment and make the first attempt. A declined payment is a 201 with status ``failed``
    (so it is replayed under the same Idempotency-Key); ``requires_action`` carries the redirect
    URL or SBP QR payload; ``pending`` means the outcome is awaited (poll or wait for the event)."""
    payment = await payment_service.create(
        session, principal=principal, data=body, claim=claim, providers=providers, clock=clock
    )
    return render(payment)


@router.get(
    "/{payment_id}",
    response_model=PaymentOut,
    responses={
        **_ERRORS,
        429: {"description": "too_many_long_polls (with Retry-After)"},
        503: {"description": "long_polls_at_capacity, overloaded (with Retry-After)"},
    },
    summary="Get a payment (optionally long-polling for a change)",
)
async def get_payment(
    payment_id: uuid.UUID,
    session: ReadSession,
    principal: Annotated[PrincipalT, Depends(require_scope("payments:read"))],
    listener: Listener,
    park: Park,
    request: Request,
    response: Response,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=payment_service.MAX_WAIT_SECONDS,
            description=(
                "Long-poll: when the payment is not final, answer once its status (or customer "
                "action) changes or after this many seconds (0: at once). Replaces a polling loop: "
                "call again until the status is final; after an error, back off before calling again."
            ),
        ),
    ] = 0,
) -> PaymentOut:
    async with client_gone(request) if wait > 0 else contextlib.nullcontext(None) as gone:
        payment = await payment_service.get_when_changed(
            session, principal=principal, payment_id=payment_id, wait=wait, listener=listener, park=park, gone=gone
        )
    if wait and listener is not None and listener.stopping:
        # draining: answered at once; closing the connection sends the client's next long-poll
        # to another instance instead of back here through keep-alive
        response.headers["Connection"] = "close"
    return render(payment)


@router.get("", response_model=PaymentList, responses=_ERRORS, summary="List payments, newest first")
async def list_payments(
    session: ReadSession,
    principal: Annotated[PrincipalT, Depends(require_scope("payments:read"))],
    payer_id: Annotated[str | None, Query(max_length=100, description="Services and admins only")] = None,
    status: PaymentStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> PaymentList:
    items, next_cursor = await payment_service.list_payments(
        session, principal=principal, payer_id=payer_id, status=status, cursor=cursor, limit=limit
    )
    return PaymentList(items=[render(p) for p in items], next_cursor=next_cursor)


@router.post(
    "/{payment_id}/capture", response_model=PaymentOut, responses=_ERRORS, summary="Capture an authorized payment"
)
async def capture_payment(
    payment_id: uuid.UUID,
    body: PaymentCapture,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("payments:capture"))],
    providers: Providers,
    clock: Clock,
) -> PaymentOut:
    amount = payment_service.parse_amount(body.amount) if body.amount else None
    payment = await payment_service.capture(
        session, principal=principal, payment_id=payment_id, amount=amount, providers=providers, clock=clock
    )
    return render(payment)


@router.post("/{payment_id}/cancel", response_model=PaymentOut, responses=_ERRORS, summary="Cancel or void a payment")
async def cancel_payment(
    payment_id: uuid.UUID,
    body: PaymentCancel,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("payments:write"))],
    providers: Providers,
    clock: Clock,
) -> PaymentOut:
    payment = await payment_service.cancel(
        session, principal=principal, payment_id=payment_id, providers=providers, clock=clock
    )
    return render(payment)
