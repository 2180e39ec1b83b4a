"""Streamer payout endpoints: my payouts and balance, my statement (JSON or CSV)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from payment_service.deps import Clock, Principal, Resources, Session
from payment_service.kit.money import MoneyValue
from payment_service.payout.endpoints import render, render_payee
from payment_service.streamer_payout import service as streamer_service
from payment_service.streamer_payout.schemas import (
    StatementLineOut,
    StatementOut,
    StreamerBalanceOut,
    StreamerPayoutsOut,
)

router = APIRouter(prefix="/v1/streamers/me", tags=["streamer payouts"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid bearer token"},
    403: {"description": "streamer_only"},
    422: {"description": "validation_failed, invalid_period"},
}


@router.get("/payouts", response_model=StreamerPayoutsOut, responses=_ERRORS, summary="My payouts and balance")
async def my_payouts(
    session: Session,
    principal: Principal,
    clock: Clock,
    resources: Resources,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> StreamerPayoutsOut:
    """The donation balance as payouts see it (what the next scheduled payout would take), the
    payout settings, and the donation payouts, newest first."""
    settings = resources.settings.payouts
    owed = await streamer_service.my_balance(session, principal=principal, settings=settings, now=clock.now())
    items, next_cursor = await streamer_service.my_payouts(session, principal=principal, cursor=cursor, limit=limit)
    payee = await streamer_service.my_payee(session, principal=principal)
    return StreamerPayoutsOut(
        balance=StreamerBalanceOut(
            balance=MoneyValue.of(owed.balance),
            in_payout=MoneyValue.of(owed.in_payout),
            available=MoneyValue.of(owed.available),
            on_hold=MoneyValue.of(owed.on_hold),
            payable=MoneyValue.of(owed.payable),
            holding_days=settings.holding_days,
        ),
        payee=render_payee(payee) if payee is not None else None,
        items=[render(p) for p in items],
        next_cursor=next_cursor,
    )


@router.get(
    "/statement",
    response_model=StatementOut,
    responses={**_ERRORS, 200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
    summary="My statement of donations, fees and payouts",
)
async def my_statement(
    session: Session,
    principal: Principal,
    resources: Resources,
    start: Annotated[date, Query(alias="from", description="First day (local date, Europe/Moscow)")],
    end: Annotated[date, Query(alias="to", description="Day after the last one")],
    format: Literal["json", "csv"] = "json",
) -> Any:
    settings = resources.settings.payouts
    st = await streamer_service.statement(session, principal=principal, start=start, end=end, settings=settings)
    if format == "csv":
        filename = f"statement_{start.isoformat()}_{end.isoformat()}.csv"
        return Response(
            content=streamer_service.statement_csv(st, timezone=settings.schedule_timezone).encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return StatementOut(
        streamer_id=st.streamer_id,
        start=st.start,
        end=st.end,
        opening_balance=MoneyValue.of(st.opening_balance),
        closing_balance=MoneyValue.of(st.closing_balance),
        donations_gross=MoneyValue.of(st.donations_gross),
        fees=MoneyValue.of(st.fees),
        donations_net=MoneyValue.of(st.donations_net),
        clawbacks=MoneyValue.of(st.clawbacks),
        payouts=MoneyValue.of(st.payouts),
        lines=[
            StatementLineOut(
                at=ln.at,
                kind=ln.kind,
                reference=ln.reference,
                gross=MoneyValue.of(ln.gross),
                fee=MoneyValue.of(ln.fee),
                net=MoneyValue.of(ln.net),
                status=ln.status,
            )
            for ln in st.lines
        ],
    )
