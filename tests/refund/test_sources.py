"""Refunds of money the order module already distributed: taken back from each account in proportion."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.db import transaction
from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.models.payment import Payment, PaymentPurpose
from payment_service.refund import service as refund_service
from tests.refund.conftest import RefundsEnv

SHARES = (("developer", 70_000), ("fees", 20_000), ("vat", 10_000))


def _spec(name: str) -> accounts.AccountSpec:
    return {
        "developer": accounts.developer_balance("dev-1"),
        "fees": accounts.platform_fees(),
        "vat": accounts.platform_vat_payable(),
    }[name]


async def _order_basis(session: AsyncSession, payment: Payment) -> refund_service.RefundBasis:
    return refund_service.RefundBasis(
        sources=tuple((_spec(name), Money(share, "RUB")) for name, share in SHARES), game_ids=("game-1",)
    )


@pytest.fixture
def distributed_orders() -> Iterator[None]:
    refund_service.register_basis(PaymentPurpose.order, _order_basis)
    yield
    refund_service.unregister_basis(PaymentPurpose.order)


async def distribute(env: RefundsEnv, payment_id: str) -> None:
    """What the order module does after a sale: order clearing → developer, fee and VAT accounts."""
    async with transaction(env.resources.sessionmaker) as session:
        await ledger_service.transfer(
            session,
            postings=[Posting(accounts.order_clearing(), _spec(n), Money(a, "RUB")) for n, a in SHARES],
            idempotency_key=f"test-distribute:{payment_id}",
            reference=f"payment:{payment_id}",
            reason="order_settled",
            now=env.resources.clock.now(),
        )


@pytest.mark.usefixtures("distributed_orders")
class TestDistributedMoney:
    async def test_refunds_take_back_from_every_account_in_proportion(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("yookassa", amount="1000.00")
        await distribute(refunds, payment["id"])

        partial = await refunds.refund(payment["id"], amount="300.00")

        assert partial.json()["status"] == "succeeded"
        assert await refunds.balance("developer:dev-1:balance") == 70_000 - 21_000
        assert await refunds.balance("platform:fees") == 20_000 - 6_000
        assert await refunds.balance("platform:vat_payable") == 10_000 - 3_000

        rest = await refunds.refund(payment["id"], destination="wallet")

        assert rest.json()["amount"]["value"] == "700.00"
        assert await refunds.balance("developer:dev-1:balance") == 0
        assert await refunds.balance("platform:fees") == 0
        assert await refunds.balance("platform:vat_payable") == 0
        assert await refunds.balance("platform:order_clearing") == 0
        assert await refunds.balance("user:u1:wallet") == 70_000
        assert await refunds.audit() == []

    async def test_money_already_paid_out_cannot_be_taken_back(self, refunds: RefundsEnv) -> None:
        payment = await refunds.paid("tbank", amount="1000.00")
        await distribute(refunds, payment["id"])
        async with transaction(refunds.resources.sessionmaker) as session:  # the developer was paid out
            await ledger_service.transfer(
                session,
                postings=[Posting(_spec("developer"), accounts.external_world(), Money(70_000, "RUB"))],
                idempotency_key="test-payout",
                reference="payout:1",
                reason="payout",
                now=refunds.resources.clock.now(),
            )

        r = await refunds.refund(payment["id"])

        assert r.status_code == 409
        assert r.json()["code"] == "refund_source_insufficient"
        assert await refunds.scalar("SELECT count(*) FROM refunds") == 0
        assert refunds.provider_refunds("tbank") == 0
        assert await refunds.audit() == []
