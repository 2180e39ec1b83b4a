"""Wire models of the Game Catalog Service's internal API (they never leave ``catalog/``).

``GET /v1/items?ids=<id>,<id>&region=RU`` (bearer token of this service) answers::

    {"items": [{"id": "game-1", "kind": "game", "title": "...", "base_game_id": null,
                "developer": {"id": "dev-1", "revenue_share_percent": "70"},
                "release_date": "2026-03-01", "preorder": false, "purchasable": true,
                "price": {"region": "RU", "currency": "RUB", "amount": "499.00",
                          "list_amount": "999.00", "discount_percent": 50}}],
     "not_found": ["game-2"]}

``price`` is null when the item is not sold in the region. Amounts are decimal strings in major
units, tax-inclusive; ``amount`` is what the customer pays now (after the running discount).
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DeveloperWire(_Wire):
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="Also the payee's ledger account id")
    revenue_share_percent: str = Field(pattern=r"^\d{1,3}(\.\d{1,2})?$")


class PriceWire(_Wire):
    region: str = Field(pattern=r"^[A-Z]{2}$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    amount: str
    list_amount: str | None = None
    discount_percent: int = Field(0, ge=0, le=100)


class ItemWire(_Wire):
    id: str = Field(min_length=1, max_length=64)
    kind: str
    title: str = Field(min_length=1, max_length=200)
    base_game_id: str | None = None
    developer: DeveloperWire
    release_date: date | None = None
    preorder: bool = False
    purchasable: bool = True
    price: PriceWire | None = None


class ItemsResponse(_Wire):
    items: list[ItemWire]
    not_found: list[str] = Field(default_factory=list)
