"""What a payment's money became (the sources a refund takes back from) and the refund policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.config import RefundSettings
from payment_service.kit.money import Money
from payment_service.ledger.accounts import AccountSpec
from payment_service.models.payment import Payment, PaymentPurpose
from payment_service.payment import service as payment_service
from payment_service.refund.rules import OverLimit, RefundPolicy

GAME_ID_KEY = "game_id"
"""Payment metadata key naming the purchased game (the default basis reads playtime for it)."""


@dataclass(frozen=True, slots=True)
class RefundBasis:
    """Where a payment's money went (``sources``: account and amount, summing to the captured
    amount) and which games it bought (whose playtime the rules look at)."""

    sources: tuple[tuple[AccountSpec, Money], ...]
    game_ids: tuple[str, ...] = ()


BasisResolver = Callable[[AsyncSession, Payment], Awaitable[RefundBasis]]
"""``resolver(session, payment)``: the basis of a payment of one purpose."""

_RESOLVERS: dict[PaymentPurpose, BasisResolver] = {}


def register_basis(purpose: PaymentPurpose, resolver: BasisResolver) -> None:
    """Let the module that owns ``purpose`` say where its payments' money went.

    E.g. the order module, once it distributes order clearing to developer, fee and VAT accounts,
    returns those accounts with their shares: refunds then take money back from each of them in
    proportion. Without a resolver the whole captured amount is taken back from the account the
    payment credited (``payment_service.credited_account``) and the game is
    ``payment.metadata["game_id"]``.
    """
    _RESOLVERS[purpose] = resolver


def unregister_basis(purpose: PaymentPurpose) -> None:
    """Back to the default basis for ``purpose`` (tests)."""
    _RESOLVERS.pop(purpose, None)


async def basis_of(session: AsyncSession, payment: Payment) -> RefundBasis:
    resolver = _RESOLVERS.get(PaymentPurpose(payment.purpose))
    if resolver is None:
        game = payment.metadata_.get(GAME_ID_KEY)
        return RefundBasis(
            sources=((payment_service.credited_account(payment), Money(payment.captured_minor, payment.currency)),),
            game_ids=(game,) if game else (),
        )
    basis = await resolver(session, payment)
    if sum(m.amount_minor for _, m in basis.sources) != payment.captured_minor or any(
        m.currency != payment.currency for _, m in basis.sources
    ):
        raise RuntimeError(f"refund basis of payment {payment.id} does not add up to its captured amount")
    return basis


def policy_from(settings: RefundSettings) -> RefundPolicy:
    return RefundPolicy(
        auto_window=timedelta(days=settings.auto_window_days),
        max_playtime=timedelta(minutes=settings.max_playtime_minutes),
        abuse_period=timedelta(days=settings.abuse_period_days),
        abuse_max_refunds=settings.abuse_max_refunds,
        hard_window=timedelta(days=settings.hard_window_days),
        over_playtime=OverLimit(settings.over_playtime),
    )
