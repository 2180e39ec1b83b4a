"""HTTP client of the Game Catalog Service: one batched GET per question, short timeouts, a retry.

Everything that is not a clean, consistent answer becomes :class:`CatalogUnavailableError`
(connection errors, timeouts, 5xx, 4xx other than the answer, malformed JSON, a price in another
region or currency than asked, a share outside 0..100, an id neither found nor reported missing).
GETs are safe to repeat, so transport errors and 5xx are retried ``max_attempts`` times in all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

import httpx
import structlog
from pydantic import ValidationError

from payment_service.catalog.ports import CatalogItem, CatalogUnavailableError, ItemKind, RegionalPrice
from payment_service.catalog.schemas import ItemsResponse, ItemWire
from payment_service.config import CatalogSettings
from payment_service.kit.money import InvalidAmount, Money, UnknownCurrency
from payment_service.pricing import rules as pricing_rules

log = structlog.get_logger(__name__)

BATCH = 50
"""Ids per request (the catalog's limit)."""


class HttpCatalogClient:
    """:class:`~payment_service.catalog.ports.GameCatalog` over the catalog's HTTP API."""

    def __init__(self, settings: CatalogSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    async def invalidate(self, item_ids: Sequence[str]) -> None:
        return None

    async def get_items(self, item_ids: Sequence[str], *, region: str) -> dict[str, CatalogItem]:
        ids = list(dict.fromkeys(item_ids))
        found: dict[str, CatalogItem] = {}
        for start in range(0, len(ids), BATCH):
            found.update(await self._batch(ids[start : start + BATCH], region))
        return found

    async def _batch(self, ids: list[str], region: str) -> dict[str, CatalogItem]:
        if not self.settings.base_url:
            raise CatalogUnavailableError("the catalog is not configured (catalog.base_url)")
        try:
            currency = pricing_rules.currency_of(region)
        except pricing_rules.UnknownRegion as exc:
            raise CatalogUnavailableError(str(exc)) from None
        response = await self._get(ids, region)
        try:
            body = ItemsResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise CatalogUnavailableError(f"malformed catalog answer: {exc.error_count()} errors") from None
        items = {}
        for wire in body.items:
            if wire.id in ids:
                items[wire.id] = _item(wire, region=region, currency=currency)
        unaccounted = set(ids) - set(items) - set(body.not_found)
        if unaccounted:
            raise CatalogUnavailableError(f"the catalog said nothing about {sorted(unaccounted)[:5]}")
        return items

    async def _get(self, ids: list[str], region: str) -> httpx.Response:
        base = str(self.settings.base_url).rstrip("/")
        headers = {"Accept": "application/json"}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        attempts = max(1, self.settings.max_attempts)
        last = "no attempt made"
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(self.settings.timeout_seconds):  # a total deadline, not per read
                    response = await self.http.get(
                        f"{base}/v1/items",
                        params={"ids": ",".join(ids), "region": region},
                        headers=headers,
                        timeout=self.settings.timeout_seconds,
                    )
            except TimeoutError:
                last = f"no answer within {self.settings.timeout_seconds}s"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return response
                last = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # our request is wrong or we are not allowed: repeating will not help
            if attempt < attempts:
                await asyncio.sleep(self.settings.retry_backoff_seconds * attempt)
        log.warning("catalog_unavailable", error=last, items=len(ids), region=region)
        raise CatalogUnavailableError(f"the catalog did not answer: {last}")


def _percent(text: str) -> Decimal:
    value = Decimal(text)
    if not Decimal(0) <= value <= Decimal(100):
        raise CatalogUnavailableError(f"revenue share {text}% is outside 0..100")
    return value


def _item(wire: ItemWire, *, region: str, currency: str) -> CatalogItem:
    try:
        kind = ItemKind(wire.kind)
    except ValueError:
        raise CatalogUnavailableError(f"unknown item kind {wire.kind!r} of {wire.id}") from None
    price = None
    if wire.price is not None:
        p = wire.price
        if p.region != region or p.currency != currency:
            raise CatalogUnavailableError(
                f"{wire.id}: asked for {region}/{currency}, the catalog answered {p.region}/{p.currency}"
            )
        try:
            amount = Money.parse(p.amount, p.currency)
            base = Money.parse(p.list_amount, p.currency) if p.list_amount is not None else amount
        except (InvalidAmount, UnknownCurrency) as exc:
            raise CatalogUnavailableError(f"{wire.id}: bad price: {exc}") from None
        if amount.is_negative or base < amount:
            raise CatalogUnavailableError(f"{wire.id}: price {amount} with list price {base} is not possible")
        price = RegionalPrice(region=region, amount=amount, base_amount=base, discount_percent=p.discount_percent)
    return CatalogItem(
        item_id=wire.id,
        kind=kind,
        title=wire.title,
        developer_id=wire.developer.id,
        developer_percent=_percent(wire.developer.revenue_share_percent),
        purchasable=wire.purchasable,
        preorder=wire.preorder,
        release_date=wire.release_date,
        price=price,
        base_game_id=wire.base_game_id,
    )
