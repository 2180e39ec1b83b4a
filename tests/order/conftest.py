"""Checkout against the real Postgres/Redis, the in-process provider emulators and the catalog emulator.

* ``shop`` builds on ``payments`` (``tests/payment/conftest.py``: the app wired to the provider
  emulators, webhooks delivered to the app, worker steps run by the test) and points the app's
  catalog dependency at the Game Catalog emulator (behind the real Redis cache).
* Users carry a ``region`` claim; wallets are funded straight through the ledger.
* :meth:`Shop.check_books` is the end of every scenario: the whole ledger balances (G1 audit)
  and every paid order's money went out of order clearing exactly as developer + fee + VAT.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from emulators.catalog.app import create_app as create_catalog_app
from emulators.catalog.app import state_of
from emulators.catalog.state import CatalogConfig, CatalogState
from sqlalchemy import text

from payment_service.auth import PrincipalKind, mint_token
from payment_service.catalog.cache import CachedCatalog
from payment_service.catalog.client import HttpCatalogClient
from payment_service.db import transaction
from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.order.endpoints import get_catalog
from tests.catalog.conftest import catalog_settings
from tests.ledger.helpers import audit
from tests.payment.conftest import PaymentsEnv, payments

__all__ = ["payments"]

RETURN = "https://store.example/after-payment"


@dataclass
class Shop:
    env: PaymentsEnv
    catalog: CatalogState

    # ---- requests ----------------------------------------------------------------------------

    def headers(self, user: str, *, key: str | None = None, region: str | None = "RU") -> dict[str, str]:
        token = mint_token(self.env.tokens.settings.auth, kind=PrincipalKind.user, subject=user, region=region)
        return self.env.tokens.headers(token, key=key or uuid.uuid4().hex)

    async def order(self, user: str, items: list[str], *, key: str | None = None, **body: Any) -> httpx.Response:
        region = body.pop("token_region", "RU")
        return await self.env.client.post(
            "/v1/orders", json={"items": items, **body}, headers=self.headers(user, key=key, region=region)
        )

    async def new_order(self, user: str, items: list[str]) -> dict[str, Any]:
        r = await self.order(user, items)
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def pay(self, user: str, order_id: str, *, key: str | None = None, **body: Any) -> httpx.Response:
        if body.get("method", "wallet") != "wallet":
            body.setdefault("return_url", RETURN)
            body.setdefault("provider", "yookassa")
        return await self.env.client.post(f"/v1/orders/{order_id}/pay", json=body, headers=self.headers(user, key=key))

    async def get(self, user: str, order_id: str) -> dict[str, Any]:
        r = await self.env.client.get(f"/v1/orders/{order_id}", headers=self.headers(user))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def complete(self, payment_id: str, *, outcome: str | None = None, provider: str = "yookassa") -> None:
        """The buyer finishes (or fails) the provider's page; the webhook is applied by the worker."""
        ppid = await self.env.scalar(
            "SELECT provider_payment_id FROM payment_attempts WHERE payment_id = :p ORDER BY number DESC LIMIT 1",
            p=uuid.UUID(payment_id),
        )
        assert ppid, "the payment has no provider payment id"
        await self.env.pay(provider, str(ppid), card_number=None, outcome=outcome)
        await self.env.worker.apply_webhooks()

    # ---- money -------------------------------------------------------------------------------

    async def fund(self, user: str, kopecks: int) -> None:
        async with transaction(self.env.resources.sessionmaker) as session:
            await ledger_service.transfer(
                session,
                postings=[Posting(accounts.external_world(), accounts.user_wallet(user), Money(kopecks, "RUB"))],
                idempotency_key=f"test-fund:{uuid.uuid4()}",
                reference=f"test:{user}",
                reason="test_funding",
                now=datetime.now(UTC),
            )

    async def wallet(self, user: str) -> tuple[int, int]:
        """(posted balance, available) of the user's wallet, in kopecks."""
        async with self.env.resources.sessionmaker() as session:
            b = await ledger_service.balance(session, accounts.user_wallet(user))
        return b.posted.amount_minor, b.available.amount_minor

    async def balance(self, code: str, currency: str = "RUB") -> int:
        """Posted balance straight from the entries, credit positive."""
        return await self.env.balance(code, currency)

    async def pending_holds(self) -> int:
        return int(await self.env.scalar("SELECT count(*) FROM ledger_holds WHERE status = 'pending'"))

    async def events(self, key: str) -> list[str]:
        async with self.env.resources.engine.connect() as conn:
            rows = await conn.execute(text("SELECT type FROM outbox_events WHERE key = :k ORDER BY seq"), {"k": key})
            return [r[0] for r in rows]

    async def check_books(self) -> None:
        """The invariants every scenario ends with."""
        async with self.env.resources.sessionmaker() as session:
            problems = await audit(session)
        assert problems == []
        sums = await self._rows(
            "SELECT e.currency, e.phase, sum(e.amount) AS s FROM ledger_entries e GROUP BY e.currency, e.phase"
        )
        assert all(r["s"] == 0 for r in sums if r["phase"] == "posted"), sums
        for order in await self._rows("SELECT * FROM orders WHERE status = 'paid'"):
            await self._check_paid_order(order)
        for order in await self._rows("SELECT * FROM orders WHERE status <> 'paid'"):
            moved = await self._rows(
                "SELECT count(*) AS n FROM ledger_transfers WHERE idempotency_key = :k", k=f"order:{order['id']}:split"
            )
            assert moved[0]["n"] == 0, f"unpaid order {order['id']} has a split"

    async def _check_paid_order(self, order: dict[str, Any]) -> None:
        oid, cur = order["id"], order["currency"]
        legs = {
            r["code"]: int(r["amount"])
            for r in await self._rows(
                "SELECT a.code, e.amount FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id "
                "JOIN ledger_accounts a ON a.id = e.account_id WHERE t.idempotency_key = :k AND e.phase = 'posted'",
                k=f"order:{oid}:split",
            )
        }
        developers = sum(v for code, v in legs.items() if code.startswith("developer:"))
        fee, vat = legs.get("platform:fees", 0), legs.get("platform:vat_payable", 0)
        assert developers + fee + vat == order["total_minor"], legs
        assert legs["platform:order_clearing"] == -order["total_minor"]
        assert (developers, fee, vat) == (order["developer_minor"], order["fee_minor"], order["vat_minor"])
        lines = await self._rows("SELECT * FROM order_lines WHERE order_id = :o", o=oid)
        assert all(ln["vat_minor"] + ln["developer_minor"] + ln["fee_minor"] == ln["price_minor"] for ln in lines)
        # order clearing nets to zero for the order: in by the wallet leg and the payment, out by the split
        refs = [f"order:{oid}"] + ([f"payment:{order['payment_id']}"] if order["payment_id"] else [])
        net = await self._rows(
            "SELECT coalesce(sum(e.amount), 0) AS s FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id "
            "JOIN ledger_accounts a ON a.id = e.account_id "
            "WHERE a.code = 'platform:order_clearing' AND a.currency = :cur AND e.phase = 'posted' "
            "AND t.reference = ANY(:refs)",
            cur=cur,
            refs=refs,
        )
        assert net[0]["s"] == 0, f"order clearing does not net to zero for order {oid}"

    async def _rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        async with self.env.resources.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(text(sql), params)).mappings().all()]


@pytest.fixture
async def shop(payments: PaymentsEnv) -> AsyncIterator[Shop]:
    catalog_app = create_catalog_app(CatalogConfig(hang_seconds=2.0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=catalog_app)) as http:
        catalog = CachedCatalog(HttpCatalogClient(catalog_settings(), http), payments.resources.redis, ttl_seconds=60)
        payments.app.dependency_overrides[get_catalog] = lambda: catalog
        try:
            yield Shop(payments, state_of(catalog_app))
        finally:
            payments.app.dependency_overrides.pop(get_catalog, None)
