"""The Redis cache in front of the catalog (real Redis): hits, invalidation, races, Redis down."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis
from emulators.catalog.state import CatalogState
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from payment_service.catalog import cache as catalog_cache
from payment_service.catalog.cache import CachedCatalog
from payment_service.catalog.client import HttpCatalogClient
from payment_service.catalog.ports import CatalogItem, CatalogUnavailableError
from payment_service.kit.money import Money
from payment_service.resources import Resources


def price_of(items: dict[str, CatalogItem], item_id: str) -> Money:
    price = items[item_id].price
    assert price is not None
    return price.amount


class TestReadThrough:
    async def test_a_second_question_is_answered_from_redis(
        self, db: Resources, catalog_client: HttpCatalogClient, catalog_state: CatalogState
    ) -> None:
        cached = CachedCatalog(catalog_client, db.redis, ttl_seconds=60)

        first = await cached.get_items(["game-1001", "dlc-1001-1"], region="RU")
        second = await cached.get_items(["game-1001", "dlc-1001-1"], region="RU")

        assert second == first
        assert len(catalog_state.requests) == 1

    async def test_regions_are_cached_apart(
        self, db: Resources, catalog_client: HttpCatalogClient, catalog_state: CatalogState
    ) -> None:
        cached = CachedCatalog(catalog_client, db.redis, ttl_seconds=60)

        ru = await cached.get_items(["game-1001"], region="RU")
        kz = await cached.get_items(["game-1001"], region="KZ")

        assert price_of(ru, "game-1001") == Money(49_900, "RUB")
        assert price_of(kz, "game-1001") == Money(299_000, "KZT")
        assert len(catalog_state.requests) == 2

    async def test_only_the_missing_items_are_asked_for(
        self, db: Resources, catalog_client: HttpCatalogClient, catalog_state: CatalogState
    ) -> None:
        cached = CachedCatalog(catalog_client, db.redis, ttl_seconds=60)
        await cached.get_items(["game-1001"], region="RU")

        await cached.get_items(["game-1001", "game-2002"], region="RU")

        assert "ids=game-2002&" in catalog_state.requests[-1]["query"]

    async def test_a_cached_item_does_not_hide_an_unavailable_catalog_for_the_others(
        self, db: Resources, catalog_client: HttpCatalogClient, catalog_state: CatalogState
    ) -> None:
        cached = CachedCatalog(catalog_client, db.redis, ttl_seconds=60)
        await cached.get_items(["game-1001"], region="RU")
        catalog_state.inject("unavailable", -1)

        with pytest.raises(CatalogUnavailableError):
            await cached.get_items(["game-1001", "game-2002"], region="RU")


class TestInvalidation:
    async def test_a_price_change_is_seen_after_the_invalidation(
        self, db: Resources, catalog_client: HttpCatalogClient, catalog_state: CatalogState
    ) -> None:
        cached = CachedCatalog(catalog_client, db.redis, ttl_seconds=60)
        await cached.get_items(["game-1001"], region="RU")
        catalog_state.set_price("game-1001", "RU", "RUB", 39_900, 49_900, 20)
        assert price_of(await cached.get_items(["game-1001"], region="RU"), "game-1001") == Money(49_900, "RUB")

        await catalog_cache.invalidate(db.redis, ["game-1001"])

        assert price_of(await cached.get_items(["game-1001"], region="RU"), "game-1001") == Money(39_900, "RUB")

    async def test_an_answer_fetched_before_an_invalidation_is_not_stored_after_it(
        self, db: Resources, catalog_client: HttpCatalogClient, catalog_state: CatalogState
    ) -> None:
        class ChangesWhileAnswering:
            """The price changes (and is invalidated) while the old answer is on its way."""

            async def get_items(self, item_ids: Sequence[str], *, region: str) -> dict[str, CatalogItem]:
                old = await catalog_client.get_items(item_ids, region=region)
                catalog_state.set_price("game-1001", "RU", "RUB", 39_900, 49_900, 20)
                await catalog_cache.invalidate(db.redis, ["game-1001"])
                return old

            async def invalidate(self, item_ids: Sequence[str]) -> None:
                return None

        racing = CachedCatalog(ChangesWhileAnswering(), db.redis, ttl_seconds=60)
        stale = await racing.get_items(["game-1001"], region="RU")
        assert price_of(stale, "game-1001") == Money(49_900, "RUB")

        fresh = await CachedCatalog(catalog_client, db.redis, ttl_seconds=60).get_items(["game-1001"], region="RU")

        assert price_of(fresh, "game-1001") == Money(39_900, "RUB")

    async def test_entries_expire(self, db: Resources, catalog_client: HttpCatalogClient) -> None:
        cached = CachedCatalog(catalog_client, db.redis, ttl_seconds=60)
        await cached.get_items(["game-1001"], region="RU")

        assert 0 < await db.redis.ttl("catalog:v1:item:game-1001") <= 60


class TestRedisDown:
    async def test_the_catalog_is_asked_directly(
        self, catalog_client: HttpCatalogClient, catalog_state: CatalogState
    ) -> None:
        dead = aioredis.Redis(
            host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0)
        )
        try:
            cached = CachedCatalog(catalog_client, dead, ttl_seconds=60)

            items = await cached.get_items(["game-1001"], region="RU")
        finally:
            await dead.aclose()

        assert price_of(items, "game-1001") == Money(49_900, "RUB")
        assert len(catalog_state.requests) == 1
