"""Order and wallet top-up REST endpoints: parse, authorize, call one service function, return.

Wallet top-ups are here (``/v1/wallets/me/top-ups``) because they are payments with a purpose,
like orders; the wallet module itself has no provider flows.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from payment_service.auth import Principal as PrincipalT
from payment_service.catalog import service as catalog_service
from payment_service.catalog.ports import GameCatalog
from payment_service.deps import Clock, IdempotencyClaim, Providers, Resources, Session, require_scope
from payment_service.kit.money import Money, MoneyValue
from payment_service.models.order import Order, WalletTopUp
from payment_service.models.payment import Payment
from payment_service.order import service as order_service
from payment_service.order.schemas import (
    OrderCreate,
    OrderLineOut,
    OrderList,
    OrderOut,
    OrderPay,
    OrderPaymentOut,
    TopUpCreate,
    TopUpOut,
)
from payment_service.order.states import OrderStatus

orders_router = APIRouter(prefix="/v1/orders", tags=["orders"])
top_up_router = APIRouter(prefix="/v1/wallets/me/top-ups", tags=["wallets"])
router = APIRouter()
"""Both routers (each carries its full prefix); included once in ``api.py``."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    403: {"description": "insufficient_scope, buyer_not_allowed"},
    404: {"description": "order_not_found, item_not_found (with item_ids)"},
    409: {
        "description": "item_not_purchasable (item_id, reason), order_not_payable, region_not_supported, "
        "wallet_not_accepted, idempotency_key_in_use"
    },
    422: {"description": "validation_failed, idempotency_key_reused"},
    503: {"description": "catalog_unavailable (nothing created), no_provider_available"},
}
_PAY_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    402: {"description": "insufficient_wallet_funds (with available, required, shortfall); nothing held"},
}
_TOP_UP_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    403: {"description": "insufficient_scope, wallet_owner_required"},
    404: {"description": "top_up_not_found"},
    409: {"description": "wallet_limit_exceeded (limit, limit_amount, excess), idempotency_key_in_use"},
    422: {"description": "validation_failed, invalid_amount, idempotency_key_reused"},
    503: {"description": "no_provider_available"},
}


async def get_catalog(resources: Resources) -> GameCatalog:
    """The Game Catalog (HTTP client behind the Redis cache); tests override this dependency."""
    return catalog_service.build(resources.settings.catalog, http=resources.http, redis=resources.redis)


Catalog = Annotated[GameCatalog, Depends(get_catalog)]


def _percent(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _payment_out(payment: Payment | None) -> OrderPaymentOut | None:
    if payment is None:
        return None
    return OrderPaymentOut(
        id=payment.id,
        status=str(payment.status),
        amount=MoneyValue.of(Money(payment.amount_minor, payment.currency)),
        method=payment.method,
        provider=payment.provider,
        action=dict(payment.action) if payment.action else None,
        decline_code=payment.decline_code,
    )


def render(order: Order, payment: Payment | None = None) -> OrderOut:
    """The API view of an order (``payment`` only when the caller loaded it)."""
    cur = order.currency

    def money(minor: int) -> MoneyValue:
        return MoneyValue.of(Money(minor, cur))

    return OrderOut(
        id=order.id,
        status=OrderStatus(order.status),
        buyer_id=order.buyer_id,
        region=order.region,
        total=money(order.total_minor),
        vat=money(order.vat_minor),
        vat_percent=_percent(order.vat_percent),
        tender=order.tender,
        wallet_amount=money(order.wallet_minor),
        provider_amount=money(order.card_minor),
        payment_id=order.payment_id,
        payment=_payment_out(payment),
        failure_code=order.failure_code,
        lines=[
            OrderLineOut(
                item_id=line.item_id,
                kind=line.kind,
                title=line.title,
                base_game_id=line.base_game_id,
                developer_id=line.developer_id,
                preorder=line.preorder,
                release_date=line.release_date,
                list_price=money(line.list_price_minor),
                discount_percent=line.discount_percent,
                price=money(line.price_minor),
                vat=money(line.vat_minor),
            )
            for line in order.lines
        ],
        expires_at=order.expires_at,
        paid_at=order.paid_at,
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


def render_top_up(top_up: WalletTopUp, payment: Payment | None) -> TopUpOut:
    return TopUpOut(
        id=top_up.id,
        status=top_up.status,
        amount=MoneyValue.of(Money(top_up.amount_minor, top_up.currency)),
        method=top_up.method,
        payment=_payment_out(payment),
        failure_code=top_up.failure_code,
        created_at=top_up.created_at,
        finished_at=top_up.finished_at,
    )


# ---- orders -------------------------------------------------------------------------------------


@orders_router.post("", status_code=201, response_model=OrderOut, responses=_ERRORS, summary="Create an order")
async def create_order(
    body: OrderCreate,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("orders:write"))],
    claim: IdempotencyClaim,
    catalog: Catalog,
    clock: Clock,
    resources: Resources,
) -> OrderOut:
    """Price the items from the catalog for the buyer's region (the token's ``region`` claim) and
    create an unpaid order. Prices are never taken from the request."""
    order = await order_service.create(
        session,
        principal=principal,
        data=body,
        claim=claim,
        catalog=catalog,
        clock=clock,
        settings=resources.settings.catalog,
    )
    return render(order)


@orders_router.get("/{order_id}", response_model=OrderOut, responses=_ERRORS, summary="Get an order")
async def get_order(
    order_id: uuid.UUID,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("orders:read"))],
) -> OrderOut:
    order = await order_service.get(session, principal=principal, order_id=order_id)
    payment = await order_service.payment_of(session, principal=principal, payment_id=order.payment_id)
    return render(order, payment)


@orders_router.get("", response_model=OrderList, responses=_ERRORS, summary="List orders, newest first")
async def list_orders(
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("orders:read"))],
    buyer_id: Annotated[str | None, Query(max_length=100, description="Services and admins only")] = None,
    status: OrderStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> OrderList:
    items, next_cursor = await order_service.list_orders(
        session, principal=principal, buyer_id=buyer_id, status=status, cursor=cursor, limit=limit
    )
    return OrderList(items=[render(o) for o in items], next_cursor=next_cursor)


@orders_router.post("/{order_id}/pay", response_model=OrderOut, responses=_PAY_ERRORS, summary="Pay an order")
async def pay_order(
    order_id: uuid.UUID,
    body: OrderPay,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("orders:write"))],
    claim: IdempotencyClaim,
    providers: Providers,
    clock: Clock,
    resources: Resources,
) -> OrderOut:
    """Pay from the wallet (``paid`` at once), through a provider, or both (``use_wallet``). A provider
    round usually answers ``awaiting_payment`` with ``payment.action`` (redirect URL, SBP QR); a
    decline answers ``pending`` with ``failure_code`` (2xx, so a retry under the same key replays it)."""
    order, payment = await order_service.pay(
        session,
        principal=principal,
        order_id=order_id,
        data=body,
        claim=claim,
        providers=providers,
        clock=clock,
        wallet=resources.settings.wallet,
    )
    return render(order, payment)


@orders_router.post("/{order_id}/cancel", response_model=OrderOut, responses=_ERRORS, summary="Cancel an unpaid order")
async def cancel_order(
    order_id: uuid.UUID,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("orders:write"))],
    clock: Clock,
) -> OrderOut:
    return render(await order_service.cancel(session, principal=principal, order_id=order_id, now=clock.now()))


# ---- wallet top-ups -----------------------------------------------------------------------------


@top_up_router.post("", status_code=201, response_model=TopUpOut, responses=_TOP_UP_ERRORS, summary="Top up my wallet")
async def create_top_up(
    body: TopUpCreate,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("wallets:write"))],
    claim: IdempotencyClaim,
    providers: Providers,
    clock: Clock,
    resources: Resources,
) -> TopUpOut:
    """Pay money into the wallet through a provider; the wallet is credited when the payment succeeds."""
    top_up, payment = await order_service.create_top_up(
        session,
        principal=principal,
        data=body,
        claim=claim,
        providers=providers,
        clock=clock,
        settings=resources.settings.wallet,
    )
    return render_top_up(top_up, payment)


@top_up_router.get("/{top_up_id}", response_model=TopUpOut, responses=_TOP_UP_ERRORS, summary="Get my top-up")
async def get_top_up(
    top_up_id: uuid.UUID,
    session: Session,
    principal: Annotated[PrincipalT, Depends(require_scope("wallets:read"))],
) -> TopUpOut:
    top_up = await order_service.get_top_up(session, principal=principal, top_up_id=top_up_id)
    payment = await order_service.payment_of(session, principal=principal, payment_id=top_up.payment_id)
    return render_top_up(top_up, payment)


router.include_router(orders_router)
router.include_router(top_up_router)
