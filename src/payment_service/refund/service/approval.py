"""Moving an approved refund's money: a ledger hold for the provider, or a wallet credit at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.accounts import AccountSpec
from payment_service.ledger.schemas import Posting
from payment_service.models.payment import Payment
from payment_service.models.refund import Refund
from payment_service.refund.service.basis import RefundBasis
from payment_service.refund.service.errors import RefundSourceInsufficient
from payment_service.refund.service.lifecycle import SYNC_BACKOFF, _reference, _set, _succeed
from payment_service.refund.states import (
    RefundDestination,
    RefundStatus,
)


def _specs(basis: RefundBasis, refund: Refund) -> list[tuple[AccountSpec, Money]]:
    by_code = {spec.code: spec for spec, _ in basis.sources}
    legs = []
    for part in refund.sources:
        spec = by_code.get(part["account"])
        if spec is None:
            raise RuntimeError(f"refund {refund.id}: source {part['account']} is not in the payment's basis")
        legs.append((spec, Money(int(part["amount_minor"]), refund.currency)))
    return legs


async def _approve(
    session: AsyncSession, payment: Payment, refund: Refund, basis: RefundBasis, *, now: datetime
) -> None:
    """Move an approved refund's money: hold it for the provider, or credit the wallet now."""
    legs = _specs(basis, refund)
    metadata = {"payment_id": str(payment.id), "refund_id": str(refund.id)}
    try:
        if refund.destination is RefundDestination.wallet:
            wallet = accounts.user_wallet(payment.payer_id, payment.currency)
            await ledger_service.transfer(
                session,
                postings=[Posting(spec, wallet, part) for spec, part in legs],
                idempotency_key=f"{_reference(refund)}:wallet",
                reference=_reference(refund),
                reason="refund",
                now=now,
                metadata=metadata,
            )
            await _succeed(session, payment, refund, now=now)
            return
        clearing = accounts.provider_clearing(refund.provider or "", payment.currency)
        hold = await ledger_service.hold(
            session,
            postings=[Posting(spec, clearing, part) for spec, part in legs],
            idempotency_key=f"{_reference(refund)}:hold",
            reference=_reference(refund),
            reason="refund_reserved",
            now=now,
            metadata=metadata,
        )
    except ledger_service.InsufficientFunds as exc:
        raise RefundSourceInsufficient(account=exc.account_code) from None
    refund.ledger_hold_id = hold.id
    await _set(refund, RefundStatus.processing, now=now)
    refund.next_sync_at = now + SYNC_BACKOFF[0]
