"""What the Payment Service may ask the Game Catalog, in our own terms.

The port (:class:`GameCatalog`) has one question: "these items, priced for this region". The
answer is a :class:`CatalogItem` per item found; an id that the catalog does not know is simply
absent. An answer that cannot be trusted — the catalog is down, slow, answers garbage or a price
in another currency than the region's — is :class:`CatalogUnavailableError`, never a guess: a
checkout must fail rather than charge a wrong price.

Implementations: :class:`~payment_service.catalog.client.HttpCatalogClient` (the service's HTTP
API) and :class:`~payment_service.catalog.cache.CachedCatalog` (Redis read-through cache in front
of any implementation, invalidated by the catalog's price events).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from payment_service.kit.money import Money


class ItemKind(StrEnum):
    """What a catalog item is."""

    game = "game"
    """A base game."""
    dlc = "dlc"
    """Downloadable content; needs its base game (the platform checks ownership when granting)."""


@dataclass(frozen=True, slots=True)
class RegionalPrice:
    """The price of an item in one region, tax-inclusive, after any running discount."""

    region: str
    amount: Money
    """What the customer pays now."""
    base_amount: Money
    """The list price before the discount (equal to ``amount`` without a discount)."""
    discount_percent: int = 0


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """A purchasable thing as the catalog describes it for one region."""

    item_id: str
    kind: ItemKind
    title: str
    developer_id: str
    """The payee: the developer/publisher whose balance receives the revenue share."""
    developer_percent: Decimal
    """The developer's share of the price without VAT (revenue-share terms), 0..100."""
    purchasable: bool
    """False when the item is delisted or not for sale."""
    preorder: bool
    """Sold before release: paid now, granted at ``release_date``."""
    release_date: date | None
    price: RegionalPrice | None
    """None when the item is not sold in the region."""
    base_game_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (the cache's format); :meth:`from_json` reads it back."""
        price = self.price
        return {
            "item_id": self.item_id,
            "kind": str(self.kind),
            "title": self.title,
            "developer_id": self.developer_id,
            "developer_percent": str(self.developer_percent),
            "purchasable": self.purchasable,
            "preorder": self.preorder,
            "release_date": self.release_date.isoformat() if self.release_date else None,
            "base_game_id": self.base_game_id,
            "price": None
            if price is None
            else {
                "region": price.region,
                "currency": price.amount.currency,
                "amount_minor": price.amount.amount_minor,
                "base_amount_minor": price.base_amount.amount_minor,
                "discount_percent": price.discount_percent,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CatalogItem:
        raw = data["price"]
        price = None
        if raw is not None:
            price = RegionalPrice(
                region=raw["region"],
                amount=Money(int(raw["amount_minor"]), raw["currency"]),
                base_amount=Money(int(raw["base_amount_minor"]), raw["currency"]),
                discount_percent=int(raw["discount_percent"]),
            )
        return cls(
            item_id=data["item_id"],
            kind=ItemKind(data["kind"]),
            title=data["title"],
            developer_id=data["developer_id"],
            developer_percent=Decimal(data["developer_percent"]),
            purchasable=bool(data["purchasable"]),
            preorder=bool(data["preorder"]),
            release_date=date.fromisoformat(data["release_date"]) if data["release_date"] else None,
            base_game_id=data.get("base_game_id"),
            price=price,
        )


class CatalogUnavailableError(Exception):
    """The catalog could not give a trustworthy answer (down, timeout, 5xx, malformed, inconsistent)."""


class GameCatalog(Protocol):
    """The port. Implementations must be safe to share between concurrent requests."""

    async def get_items(self, item_ids: Sequence[str], *, region: str) -> dict[str, CatalogItem]:
        """The items priced for ``region``, by id; unknown ids are absent.

        Raises CatalogUnavailableError when no trustworthy answer can be had.
        """
        ...

    async def invalidate(self, item_ids: Sequence[str]) -> None:
        """Forget anything remembered about ``item_ids`` (a no-op without a cache)."""
        ...
