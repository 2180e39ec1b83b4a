"""The HTTP client against the catalog emulator: answers, and every way of not answering."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest
from emulators.catalog.state import CatalogState

from payment_service.catalog.client import HttpCatalogClient
from payment_service.catalog.ports import CatalogUnavailableError, ItemKind
from payment_service.kit.money import Money
from tests.catalog.conftest import catalog_settings


class TestGetItems:
    async def test_prices_payee_terms_and_release_for_the_region(self, catalog_client: HttpCatalogClient) -> None:
        items = await catalog_client.get_items(["game-2002", "dlc-1001-1", "game-3003"], region="RU")

        sale = items["game-2002"]
        assert sale.kind is ItemKind.game
        assert sale.price is not None
        assert sale.price.amount == Money(129_900, "RUB")
        assert sale.price.base_amount == Money(199_900, "RUB")
        assert sale.price.discount_percent == 35
        assert (sale.developer_id, sale.developer_percent) == ("dev-harbor", Decimal("75"))
        assert items["dlc-1001-1"].base_game_id == "game-1001"
        assert items["game-3003"].preorder is True
        assert items["game-3003"].release_date == date(2027, 3, 1)

    async def test_the_same_item_is_priced_in_the_regions_currency(self, catalog_client: HttpCatalogClient) -> None:
        items = await catalog_client.get_items(["game-1001"], region="KZ")

        assert items["game-1001"].price is not None
        assert items["game-1001"].price.amount == Money(299_000, "KZT")

    async def test_unknown_ids_are_absent_and_unsold_regions_have_no_price(
        self, catalog_client: HttpCatalogClient
    ) -> None:
        items = await catalog_client.get_items(["game-6006", "no-such-game"], region="RU")

        assert set(items) == {"game-6006"}
        assert items["game-6006"].price is None

    async def test_asks_in_batches_of_fifty(
        self, catalog_client: HttpCatalogClient, catalog_state: CatalogState
    ) -> None:
        ids = [f"missing-{n}" for n in range(120)]

        assert await catalog_client.get_items(ids, region="RU") == {}
        assert len(catalog_state.requests) == 3


class TestUnavailable:
    async def test_one_failure_is_retried(self, catalog_client: HttpCatalogClient, catalog_state: CatalogState) -> None:
        catalog_state.inject("unavailable", 1)

        items = await catalog_client.get_items(["game-1001"], region="RU")

        assert "game-1001" in items
        assert len(catalog_state.requests) == 2

    @pytest.mark.parametrize("fault", ["unavailable", "error", "garbage", "wrong_currency", "hang"])
    async def test_no_trustworthy_answer_is_an_error_never_a_price(
        self, catalog_client: HttpCatalogClient, catalog_state: CatalogState, fault: str
    ) -> None:
        catalog_state.inject(fault, -1)

        with pytest.raises(CatalogUnavailableError):
            await catalog_client.get_items(["game-1001"], region="RU")

    async def test_an_unconfigured_catalog_is_unavailable(self, catalog_http: httpx.AsyncClient) -> None:
        client = HttpCatalogClient(catalog_settings(base_url=None), catalog_http)

        with pytest.raises(CatalogUnavailableError, match="not configured"):
            await client.get_items(["game-1001"], region="RU")

    async def test_a_refused_token_is_not_retried(
        self, catalog_http: httpx.AsyncClient, catalog_state: CatalogState
    ) -> None:
        catalog_state.config.token = "right"
        client = HttpCatalogClient(catalog_settings(token="wrong"), catalog_http)

        with pytest.raises(CatalogUnavailableError, match="401"):
            await client.get_items(["game-1001"], region="RU")
        assert len(catalog_state.requests) == 1

    async def test_the_right_token_is_sent(self, catalog_http: httpx.AsyncClient, catalog_state: CatalogState) -> None:
        catalog_state.config.token = "right"
        client = HttpCatalogClient(catalog_settings(token="right"), catalog_http)

        assert "game-1001" in await client.get_items(["game-1001"], region="RU")
