"""The catalog's internal API (``GET /v1/items``) and the ``/_emulator`` control endpoints.

Control endpoints::

    POST   /_emulator/reset                      back to the default catalog, no faults, no requests
    GET    /_emulator/requests                   requests received
    GET    /_emulator/items                      every stored item
    PUT    /_emulator/items/{id}                 create or replace an item (stored shape, see scenarios.py)
    POST   /_emulator/items/{id}/price           {"region", "currency", "amount", "list_amount"?, "discount_percent"?}
    POST   /_emulator/fault                      {"mode": one of state.FAULTS, "count": n (-1: until cleared)}
    DELETE /_emulator/fault                      clear injected faults
    GET    /_emulator/changes                    change events the real catalog would have published
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from emulators._common.money import format_minor, parse_decimal_minor
from emulators.catalog.state import FAULTS, CatalogState


def _wire(item: dict[str, Any], region: str, *, currency_override: str | None = None) -> dict[str, Any]:
    price = item.get("prices", {}).get(region)
    return {
        "id": item["id"],
        "kind": item["kind"],
        "title": item["title"],
        "base_game_id": item.get("base_game_id"),
        "developer": {"id": item["developer_id"], "revenue_share_percent": item["revenue_share_percent"]},
        "release_date": item.get("release_date"),
        "preorder": bool(item.get("preorder", False)),
        "purchasable": bool(item.get("purchasable", True)),
        "price": None
        if price is None
        else {
            "region": region,
            "currency": currency_override or price["currency"],
            "amount": format_minor(price["amount_minor"]),
            "list_amount": format_minor(price["list_minor"]),
            "discount_percent": price["discount_percent"],
        },
    }


def api_router(state: CatalogState) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["catalog"])

    @r.get("/items", response_model=None)
    async def items(
        request: Request,
        ids: str = Query(..., min_length=1, description="Comma-separated item ids (at most 50)"),
        region: str = Query(..., pattern=r"^[A-Z]{2}$"),
    ) -> Response | dict[str, Any]:
        state.record("GET", request.url.path, request.url.query)
        token = state.config.token
        if token is not None and request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        wanted = [i for i in ids.split(",") if i]
        if len(wanted) > 50:
            return JSONResponse({"error": "too_many_ids", "limit": 50}, status_code=400)
        fault = state.next_fault()
        if fault == "unavailable":
            return JSONResponse({"error": "unavailable"}, status_code=503)
        if fault == "error":
            return JSONResponse({"error": "internal"}, status_code=500)
        if fault == "garbage":
            return PlainTextResponse("<html>maintenance</html>", status_code=200)
        if fault == "hang":
            await asyncio.sleep(state.config.hang_seconds)
        override = "USD" if fault == "wrong_currency" else None
        found = [_wire(state.items[i], region, currency_override=override) for i in wanted if i in state.items]
        return {"items": found, "not_found": [i for i in wanted if i not in state.items]}

    return r


def control_router(state: CatalogState) -> APIRouter:
    r = APIRouter(prefix="/_emulator", tags=["emulator control"])

    @r.post("/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return {"ok": True}

    @r.get("/requests")
    async def requests() -> list[dict[str, Any]]:
        return state.requests

    @r.get("/items")
    async def items() -> dict[str, Any]:
        return state.items

    @r.put("/items/{item_id}")
    async def put_item(item_id: str, item: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        missing = {"kind", "title", "developer_id", "revenue_share_percent"} - set(item)
        if missing:
            raise HTTPException(400, f"missing fields {sorted(missing)}")
        return state.upsert({**item, "id": item_id})

    @r.post("/items/{item_id}/price")
    async def set_price(item_id: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        if item_id not in state.items:
            raise HTTPException(404, "no such item")
        amount = parse_decimal_minor(body.get("amount"))
        listed = parse_decimal_minor(body["list_amount"]) if body.get("list_amount") is not None else None
        if amount is None or (body.get("list_amount") is not None and listed is None):
            raise HTTPException(400, "amounts are decimal strings like 499.00")
        return state.set_price(
            item_id,
            str(body.get("region", "RU")),
            str(body.get("currency", "RUB")),
            amount,
            listed,
            int(body.get("discount_percent", 0)),
        )

    @r.post("/fault")
    async def fault(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        mode = str(body.get("mode", ""))
        if mode not in FAULTS:
            raise HTTPException(400, f"unknown fault {mode!r}; one of {list(FAULTS)}")
        state.inject(mode, int(body.get("count", 1)))
        return {"queued": list(state.faults), "sticky": state.sticky}

    @r.delete("/fault")
    async def clear_fault() -> dict[str, Any]:
        state.clear_faults()
        return {"ok": True}

    @r.get("/changes")
    async def changes() -> list[dict[str, Any]]:
        return state.changes

    return r
