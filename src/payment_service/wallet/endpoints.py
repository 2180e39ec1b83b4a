"""Wallet REST endpoints: a player's own wallet, and the back-office view of any wallet."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from payment_service.auth import Principal as PrincipalT
from payment_service.auth import PrincipalKind
from payment_service.deps import Clock, IdempotencyClaim, Resources, Session, require_scope
from payment_service.kit.money import InvalidAmount, UnknownCurrency
from payment_service.models.ledger import EntryPhase, TransferKind
from payment_service.wallet import service as wallet_service
from payment_service.wallet.schemas import (
    AdjustmentCreate,
    AdminWallet,
    Direction,
    LineStatus,
    Wallet,
    WalletTransaction,
    WalletTransactionPage,
)

me_router = APIRouter(prefix="/v1/wallets", tags=["wallets"])
admin_router = APIRouter(prefix="/v1/admin/wallets", tags=["wallets", "admin"])
router = APIRouter()
"""Both routers (each carries its full prefix); included once in ``api.py``."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid_wallet_owner"},
    401: {"description": "Missing or invalid bearer token"},
    403: {"description": "insufficient_scope, wallet_owner_required"},
    422: {"description": "validation_failed, invalid_cursor"},
}

UserId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="Platform user id")]
Cursor = Annotated[str | None, Query(max_length=32, description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=200)]


def _owner(principal: PrincipalT) -> str:
    if principal.kind is not PrincipalKind.user:
        raise wallet_service.WalletOwnerRequired()
    return principal.subject


@me_router.get("/me", response_model=Wallet, summary="My wallet", responses=_ERRORS)
async def my_wallet(
    principal: Annotated[PrincipalT, Depends(require_scope("wallets:read"))],
    session: Session,
    clock: Clock,
    resources: Resources,
) -> Wallet:
    state = await wallet_service.get_wallet(
        session, user_id=_owner(principal), settings=resources.settings.wallet, now=clock.now()
    )
    return Wallet.of(state)


@me_router.get(
    "/me/transactions",
    response_model=WalletTransactionPage,
    summary="My wallet's lines, newest first",
    responses=_ERRORS,
)
async def my_transactions(
    principal: Annotated[PrincipalT, Depends(require_scope("wallets:read"))],
    session: Session,
    resources: Resources,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> WalletTransactionPage:
    page = await wallet_service.transactions(
        session, user_id=_owner(principal), settings=resources.settings.wallet, cursor=cursor, limit=limit
    )
    return WalletTransactionPage.of(page)


@admin_router.get("/{user_id}", response_model=AdminWallet, summary="Any user's wallet", responses=_ERRORS)
async def admin_wallet(
    user_id: UserId,
    _: Annotated[PrincipalT, Depends(require_scope("admin:wallets"))],
    session: Session,
    clock: Clock,
    resources: Resources,
) -> AdminWallet:
    settings = resources.settings.wallet
    state = await wallet_service.get_wallet(session, user_id=user_id, settings=settings, now=clock.now())
    page = await wallet_service.transactions(session, user_id=user_id, settings=settings, limit=20)
    return AdminWallet(wallet=Wallet.of(state), recent=WalletTransactionPage.of(page))


@admin_router.get(
    "/{user_id}/transactions",
    response_model=WalletTransactionPage,
    summary="Any user's wallet lines",
    responses=_ERRORS,
)
async def admin_transactions(
    user_id: UserId,
    _: Annotated[PrincipalT, Depends(require_scope("admin:wallets"))],
    session: Session,
    resources: Resources,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> WalletTransactionPage:
    page = await wallet_service.transactions(
        session, user_id=user_id, settings=resources.settings.wallet, cursor=cursor, limit=limit
    )
    return WalletTransactionPage.of(page)


@admin_router.post(
    "/{user_id}/adjustments",
    status_code=201,
    response_model=WalletTransaction,
    summary="Credit (goodwill) or debit a wallet; needs an Idempotency-Key",
    responses={
        **_ERRORS,
        402: {"description": "insufficient_funds (with the shortfall)"},
        422: {"description": "validation_failed, invalid_wallet_amount"},
    },
)
async def adjust_wallet(
    user_id: UserId,
    body: AdjustmentCreate,
    principal: Annotated[PrincipalT, Depends(require_scope("admin:wallets"))],
    session: Session,
    clock: Clock,
    resources: Resources,
    claim: IdempotencyClaim,
) -> WalletTransaction:
    settings = resources.settings.wallet
    if claim is None:  # the unit of work always claims the key of a mutating /v1 request
        raise RuntimeError("adjustment outside the request's unit of work")
    try:
        amount = body.amount.to_money()
    except (InvalidAmount, UnknownCurrency) as exc:
        raise wallet_service.InvalidWalletAmount(str(exc)) from None
    transfer = await wallet_service.adjust(
        session,
        user_id=user_id,
        amount=amount,
        credit=body.direction is Direction.credit,
        note=body.note,
        operator=principal.key,
        idempotency_key=f"wallet-adjustment:{claim.id}",
        settings=settings,
        now=clock.now(),
    )
    account = wallet_service.wallet_account(user_id, settings.currency)
    leg = next(leg for leg in transfer.legs if leg.account_id == account.id and leg.phase is EntryPhase.posted)
    return WalletTransaction(
        id=f"t{transfer.id}",
        transfer_id=transfer.id,
        direction=Direction.credit if leg.amount.amount_minor > 0 else Direction.debit,
        amount=body.amount,
        status=LineStatus.completed if transfer.kind is TransferKind.transfer else LineStatus.pending,
        reason=transfer.reason,
        reference=transfer.reference,
        created_at=transfer.effective_at,
    )


router.include_router(me_router)
router.include_router(admin_router)
