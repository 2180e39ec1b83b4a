"""Checkout: orders priced from the Game Catalog, paid by a provider, from the wallet, or both.

Invariants this module keeps:

* **Prices come from the catalog.** An order names catalog items only; price, payee, revenue-share
  terms and currency (the buyer's region) are the catalog's. No answer from the catalog is
  ``catalog_unavailable`` (503) and nothing is created.
* **One payment round at a time.** ``pay`` starts a round under the order's row lock: the wallet
  part is held (``wallet.service.pay_order``) and/or a payment with purpose ``order`` is made
  (reference ``order:<id>:<round>``). The round ends in the payment's own transaction through the
  payment status hook (:func:`on_order_payment_status`): success posts the wallet hold and splits
  the money; failure, cancellation or expiry releases the hold and the order may be paid again.
* **One split transfer per order.** Payments of purpose ``order`` land in
  ``platform:order_clearing`` (the payment module books them), the wallet part lands there when
  its hold is posted; then ONE transfer (key ``order:<id>:split``) moves the total out to each
  developer's balance, the platform fees and VAT payable — ``developer + fee + VAT == total`` per
  line (``pricing.service``), so order clearing nets to zero per paid order.
* ``order.paid`` is emitted in the same transaction (the platform grants the items).

Wallet top-ups live here too (``POST /v1/wallets/me/top-ups``): a payment with purpose
``wallet_top_up`` (the payment module credits the wallet once, under the payment's ledger key),
checked against the wallet limits at creation, tracked by a :class:`WalletTopUp` row.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.auth import Principal, PrincipalKind
from payment_service.catalog import service as catalog_service
from payment_service.catalog.ports import CatalogItem, GameCatalog
from payment_service.config import CatalogSettings, WalletSettings
from payment_service.db import checkpoint
from payment_service.errors import Conflict, Forbidden, NotFound, Unprocessable
from payment_service.kit import idempotency
from payment_service.kit.clock import Clock
from payment_service.kit.money import InvalidAmount, Money, MoneyValue, UnknownCurrency
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.schemas import Posting
from payment_service.models.order import Order, OrderLine, WalletTopUp
from payment_service.models.payment import Payment, PaymentPurpose
from payment_service.order import repository
from payment_service.order.schemas import WALLET, OrderCreate, OrderPay, TopUpCreate
from payment_service.order.states import OrderStatus, Tender, TopUpStatus, advance_order, is_payable
from payment_service.outbox import events
from payment_service.outbox import service as outbox_service
from payment_service.payment import service as payment_service
from payment_service.payment.schemas import PaymentCreate
from payment_service.payment.states import PaymentStatus
from payment_service.pricing import rules as pricing_rules
from payment_service.pricing import service as pricing_service
from payment_service.providers.registry import ProviderRegistry
from payment_service.refund import service as refund_service
from payment_service.wallet import service as wallet_service

log = structlog.get_logger(__name__)

ORDER_TTL = timedelta(minutes=30)
"""How long an order may stay unpaid (a round in flight keeps it until the payment is decided)."""
SPLIT_HOLD_GRACE = timedelta(hours=24)
"""A split round's wallet hold outlives its payment's expiry by this much; the payment's end
releases it long before (the ledger's hold expiry is only the last resort)."""
PAYMENT_DESCRIPTION = "Заказ в магазине игр"
"""What the buyer sees on the provider's payment page."""
TOP_UP_DESCRIPTION = "Пополнение кошелька"
LEDGER_REASON = "order_split"
_FINAL = (PaymentStatus.succeeded, PaymentStatus.failed, PaymentStatus.canceled, PaymentStatus.expired)


class OrderNotFound(NotFound):
    code = "order_not_found"
    title = "Order not found"


class ItemNotFound(NotFound):
    code = "item_not_found"
    title = "The catalog has no such item"


class ItemNotPurchasable(Conflict):
    """``reason``: not_for_sale, not_sold_in_region, free_to_play, not_released."""

    code = "item_not_purchasable"
    title = "The item cannot be bought"


class RegionNotSupported(Conflict):
    code = "region_not_supported"
    title = "The store does not sell in this region"


class BuyerNotAllowed(Forbidden):
    code = "buyer_not_allowed"
    title = "Users buy for themselves, in their own region; only internal services may buy for another user"


class OrderNotPayable(Conflict):
    code = "order_not_payable"
    title = "The order cannot be paid in its current state"


class WalletNotAccepted(Conflict):
    code = "wallet_not_accepted"
    title = "The wallet cannot pay an order in this currency"


class InsufficientWalletFunds(wallet_service.InsufficientWalletFunds):
    """The wallet cannot cover its part of an order; ``shortfall`` says how much is missing.
    Nothing was held. (The order API's own code for the wallet's error.)"""

    code = "insufficient_wallet_funds"


class TopUpNotFound(NotFound):
    code = "top_up_not_found"
    title = "Top-up not found"


class InvalidTopUpAmount(Unprocessable):
    code = "invalid_amount"
    title = "The amount must be positive and in the wallet's currency"


# ---- reading ------------------------------------------------------------------------------------


def can_see(principal: Principal, order: Order) -> bool:
    """Users see their own orders; services and admins (with the endpoint's scope) see all."""
    if principal.kind is PrincipalKind.user:
        return order.buyer_id == principal.subject
    return True


async def get(session: AsyncSession, *, principal: Principal, order_id: uuid.UUID) -> Order:
    """The order if the principal may see it. Raises OrderNotFound (also for others' orders)."""
    order = await repository.get(session, order_id)
    if order is None or not can_see(principal, order):
        raise OrderNotFound()
    return order


async def payment_of(session: AsyncSession, *, principal: Principal, payment_id: uuid.UUID | None) -> Payment | None:
    """The payment of an order's round, if the principal may see it."""
    if payment_id is None:
        return None
    try:
        return await payment_service.get(session, principal=principal, payment_id=payment_id)
    except payment_service.PaymentNotFound:
        return None


async def list_orders(
    session: AsyncSession,
    *,
    principal: Principal,
    buyer_id: str | None,
    status: OrderStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Order], str | None]:
    """A page of orders, newest first. Users always get only their own."""
    if principal.kind is PrincipalKind.user:
        buyer_id = principal.subject
    try:
        after = repository.decode_cursor(cursor) if cursor else None
    except ValueError:
        raise Unprocessable("cursor is not valid", field="cursor") from None
    rows = await repository.page(session, buyer_id=buyer_id, status=status, after=after, limit=limit + 1)
    items = rows[:limit]
    next_cursor = repository.encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return items, next_cursor


# ---- creating -----------------------------------------------------------------------------------


def _buyer_and_region(principal: Principal, data: OrderCreate, settings: CatalogSettings) -> tuple[str, str]:
    if principal.kind is PrincipalKind.user:
        region = principal.region or settings.default_region
        if data.buyer_id not in (None, principal.subject) or data.region not in (None, region):
            raise BuyerNotAllowed()
        return principal.subject, region
    if data.buyer_id is None:
        raise Unprocessable("buyer_id is required when a service creates an order", field="buyer_id")
    return data.buyer_id, data.region or settings.default_region


def _check_purchasable(item: CatalogItem, *, currency: str, now: datetime) -> Money:
    """The item's price, or ItemNotPurchasable / CatalogUnavailable."""
    if not item.purchasable:
        raise ItemNotPurchasable(item_id=item.item_id, reason="not_for_sale")
    if item.price is None:
        raise ItemNotPurchasable(item_id=item.item_id, reason="not_sold_in_region")
    if item.price.amount.currency != currency:  # the client checks this too: never charge a foreign price
        raise catalog_service.CatalogUnavailable(f"{item.item_id} is priced in {item.price.amount.currency}")
    if not item.price.amount.is_positive:
        raise ItemNotPurchasable(item_id=item.item_id, reason="free_to_play")
    if item.release_date is not None and item.release_date > now.date() and not item.preorder:
        raise ItemNotPurchasable(item_id=item.item_id, reason="not_released")
    try:
        accounts.developer_balance(item.developer_id, currency)
    except ValueError:
        raise catalog_service.CatalogUnavailable(f"{item.item_id} names an unusable developer id") from None
    return item.price.amount


def _apply_split(order: Order, *, at: datetime) -> None:
    """(Re)compute every line's split with the VAT rate in force at ``at``, and the order's sums."""
    vat_percent = pricing_rules.vat_rate(order.region, at)
    split = pricing_service.split_order(
        [(Money(line.price_minor, order.currency), line.developer_percent) for line in order.lines],
        vat_percent=vat_percent,
        currency=order.currency,
    )
    for line, part in zip(order.lines, split.lines, strict=True):
        line.vat_minor = part.vat.amount_minor
        line.developer_minor = part.developer.amount_minor
        line.fee_minor = part.fee.amount_minor
    order.vat_percent = vat_percent
    order.total_minor = split.price.amount_minor
    order.vat_minor = split.vat.amount_minor
    order.developer_minor = split.developer.amount_minor
    order.fee_minor = split.fee.amount_minor


async def create(
    session: AsyncSession,
    *,
    principal: Principal,
    data: OrderCreate,
    claim: idempotency.Claim | None,
    catalog: GameCatalog,
    clock: Clock,
    settings: CatalogSettings,
) -> Order:
    """Create an order of catalog items for the buyer, priced from the catalog for their region.

    The request's transaction is committed (``db.checkpoint``) before the catalog is asked, so no
    transaction waits on it. Raises BuyerNotAllowed, RegionNotSupported, CatalogUnavailable (503),
    ItemNotFound (with ``item_ids``), ItemNotPurchasable (with ``item_id`` and ``reason``).
    """
    if claim is not None and claim.resumed:
        existing = await repository.by_request_key(session, claim.id)
        if existing is not None:
            return existing
    buyer_id, region = _buyer_and_region(principal, data, settings)
    try:
        currency = pricing_rules.currency_of(region)
    except pricing_rules.UnknownRegion:
        raise RegionNotSupported(region=region) from None

    await checkpoint(session)  # nothing is open while the catalog answers
    found = await catalog_service.get_items(catalog, data.items, region=region)
    missing = [i for i in data.items if i not in found]
    if missing:
        raise ItemNotFound(item_ids=missing)

    now = clock.now()
    order = Order(
        id=uuid.uuid4(),
        buyer_id=buyer_id,
        created_by=principal.key,
        region=region,
        currency=currency,
        status=OrderStatus.pending,
        wallet_minor=0,
        card_minor=0,
        rounds=0,
        request_key=claim.id if claim else None,
        expires_at=now + ORDER_TTL,
        created_at=now,
        updated_at=now,
    )
    for position, item_id in enumerate(data.items):
        item = found[item_id]
        price = _check_purchasable(item, currency=currency, now=now)
        assert item.price is not None
        order.lines.append(
            OrderLine(
                position=position,
                item_id=item.item_id,
                kind=str(item.kind),
                title=item.title[:200],
                base_game_id=item.base_game_id,
                developer_id=item.developer_id,
                developer_percent=item.developer_percent,
                preorder=item.preorder,
                release_date=item.release_date,
                list_price_minor=max(item.price.base_amount.amount_minor, price.amount_minor),
                discount_percent=item.price.discount_percent,
                price_minor=price.amount_minor,
            )
        )
    _apply_split(order, at=now)
    await repository.add(session, order)
    return order


# ---- paying -------------------------------------------------------------------------------------


def _round_reference(order: Order) -> str:
    return f"order:{order.id}:{order.rounds}"


def _reference(order: Order) -> str:
    return f"order:{order.id}"


def _payment_request(order: Order, data: OrderPay, principal: Principal) -> PaymentCreate:
    assert data.method != WALLET
    assert data.return_url is not None
    return PaymentCreate(
        amount=MoneyValue.of(Money(order.card_minor, order.currency)),
        method=data.method,
        description=PAYMENT_DESCRIPTION,
        return_url=data.return_url,
        order_reference=_round_reference(order),
        capture=True,
        provider=data.provider,
        payer_id=None if principal.kind is PrincipalKind.user else order.buyer_id,
        payer_phone=data.payer_phone,
        metadata={"order_id": str(order.id), "round": str(order.rounds)},
    )


async def pay(
    session: AsyncSession,
    *,
    principal: Principal,
    order_id: uuid.UUID,
    data: OrderPay,
    claim: idempotency.Claim | None,
    providers: ProviderRegistry,
    clock: Clock,
    wallet: WalletSettings,
) -> tuple[Order, Payment | None]:
    """Start a payment round: from the wallet (held and posted at once: the order is paid now),
    through a provider, or split (the wallet part held, the rest through a provider).

    A provider round returns with the payment in whatever state the provider left it (usually
    ``requires_action`` with the redirect/QR); the round ends when the payment does (status hook).
    A decline ends it at once: the order is ``pending`` again with ``failure_code``, the wallet
    part released. A retry under the same Idempotency-Key resumes the round. Raises
    OrderNotFound, OrderNotPayable, WalletNotAccepted, InsufficientWalletFunds (402, with the
    shortfall; nothing held), and the payment errors (NoProviderAvailable …).
    """
    order = await repository.get(session, order_id, lock=True)
    if order is None or not can_see(principal, order):
        raise OrderNotFound()
    if claim is not None and claim.resumed and order.pay_request_key == claim.id:
        return await _resume_round(
            session, order, data=data, principal=principal, claim=claim, providers=providers, clock=clock
        )
    now = clock.now()
    if order.status is OrderStatus.pending and order.expires_at <= now:
        raise OrderNotPayable("the order has expired", order_status=str(OrderStatus.expired))
    if not is_payable(order.status):
        raise OrderNotPayable(order_status=str(order.status), payment_id=str(order.payment_id or "") or None)

    total = Money(order.total_minor, order.currency)
    wants_wallet = data.method == WALLET or data.use_wallet
    if wants_wallet and order.currency != wallet.currency:
        raise WalletNotAccepted(order_currency=order.currency, wallet_currency=wallet.currency)
    from_wallet = Money.zero(order.currency)
    if data.method == WALLET:
        from_wallet = total
    elif data.use_wallet:
        plan = await wallet_service.plan_split_tender(session, user_id=order.buyer_id, total=total, settings=wallet)
        from_wallet = plan.wallet
    by_provider = total - from_wallet
    order.rounds += 1
    order.tender = (
        Tender.wallet if by_provider.is_zero else Tender.provider if from_wallet.is_zero else Tender.split_tender
    )
    order.method = WALLET if order.tender is Tender.wallet else str(data.method)
    order.wallet_minor = from_wallet.amount_minor
    order.card_minor = by_provider.amount_minor
    order.pay_request_key = claim.id if claim else None
    order.payment_id = None
    order.wallet_hold_id = None
    order.failure_code = None
    order.updated_at = now

    if from_wallet.is_positive:
        hold_until = None if by_provider.is_zero else now + payment_service.PAYMENT_TTL + SPLIT_HOLD_GRACE
        try:
            hold = await wallet_service.pay_order(
                session,
                user_id=order.buyer_id,
                order_id=str(order.id),
                amount=from_wallet,
                idempotency_key=f"{_round_reference(order)}:wallet",
                settings=wallet,
                now=now,
                expires_at=hold_until,
            )
        except wallet_service.InsufficientWalletFunds as exc:
            raise InsufficientWalletFunds(available=exc.available, required=exc.required) from None
        order.wallet_hold_id = hold.id

    if by_provider.is_zero:  # all from the wallet: nothing external to wait for
        await _collect_wallet(session, order, now=now)
        await _settle(session, order, now=now)
        return order, None

    advance_order(order.status, OrderStatus.awaiting_payment)
    order.status = OrderStatus.awaiting_payment
    await session.flush()
    payment = await payment_service.create(
        session,
        principal=principal,
        data=_payment_request(order, data, principal),
        purpose=PaymentPurpose.order,
        claim=claim,
        providers=providers,
        clock=clock,
    )
    return await _after_payment_created(session, order.id, payment, now=clock.now())


async def _resume_round(
    session: AsyncSession,
    order: Order,
    *,
    data: OrderPay,
    principal: Principal,
    claim: idempotency.Claim,
    providers: ProviderRegistry,
    clock: Clock,
) -> tuple[Order, Payment | None]:
    """The request that started this round died after its checkpoint: continue the same payment."""
    if order.status is OrderStatus.awaiting_payment and order.tender in (Tender.provider, Tender.split_tender):
        payment = await payment_service.create(
            session,
            principal=principal,
            data=_payment_request(order, data, principal),
            purpose=PaymentPurpose.order,
            claim=claim,
            providers=providers,
            clock=clock,
        )
        return await _after_payment_created(session, order.id, payment, now=clock.now())
    return order, await payment_of(session, principal=principal, payment_id=order.payment_id)


async def _after_payment_created(
    session: AsyncSession, order_id: uuid.UUID, payment: Payment, *, now: datetime
) -> tuple[Order, Payment]:
    order = await repository.get(session, order_id, lock=True)
    assert order is not None
    if order.payment_id is None and payment.order_reference == _round_reference(order):
        order.payment_id = payment.id
        order.updated_at = now
        await session.flush()
    return order, payment


# ---- ending a round (payment status hook) -------------------------------------------------------


async def on_order_payment_status(session: AsyncSession, payment: Payment, now: datetime) -> None:
    """Payment status hook for purpose ``order`` (registered below; same transaction as the payment).

    ``succeeded`` → post the wallet hold, split the money, ``order.paid``; ``failed``/``canceled``/
    ``expired`` → release the wallet hold; the order may be paid again (or has expired). Payments
    made without an order (``POST /v1/payments``) are left alone. A success that no open round
    expects (cannot happen through this module) is kept in order clearing and reported with
    ``payment.refund_required``.
    """
    status = PaymentStatus(payment.status)
    if status not in _FINAL:
        return
    raw = payment.metadata_.get("order_id")
    if not raw:
        return
    try:
        order = await repository.get(session, uuid.UUID(raw), lock=True)
    except ValueError:
        order = None
    if order is None:
        log.error("order_payment_without_order", payment_id=str(payment.id))
        return
    expected = (
        order.status is OrderStatus.awaiting_payment
        and payment.order_reference == _round_reference(order)
        and order.payment_id in (None, payment.id)
    )
    if not expected:
        if status is PaymentStatus.succeeded and not (
            order.payment_id == payment.id and order.status is OrderStatus.paid
        ):
            log.error("order_payment_unexpected", order_id=str(order.id), payment_id=str(payment.id))
            await _refund_required(session, payment, reason=f"no open payment round of order {order.id}", now=now)
        return
    order.payment_id = payment.id
    if status is PaymentStatus.succeeded:
        if payment.captured_minor != order.card_minor or payment.currency != order.currency:
            log.error("order_payment_amount_mismatch", order_id=str(order.id), captured=payment.captured_minor)
            await _refund_required(session, payment, reason="captured amount differs from the order", now=now)
            await _end_round(session, order, failure="amount_mismatch", now=now)
            return
        if not await _collect_wallet(session, order, now=now):
            await _refund_required(session, payment, reason="the wallet part of the split was lost", now=now)
            await _end_round(session, order, failure="wallet_part_unavailable", now=now)
            return
        await _settle(session, order, now=now)
        return
    await _end_round(session, order, failure=payment.decline_code or f"payment_{status}", now=now)


payment_service.on_status_change(PaymentPurpose.order, on_order_payment_status)


async def _collect_wallet(session: AsyncSession, order: Order, *, now: datetime) -> bool:
    """Post the round's wallet hold (wallet → order clearing). If the hold is gone (its expiry
    passed before the provider part arrived), take the amount again if the wallet still has it.
    False when it cannot be had."""
    if order.wallet_hold_id is None or order.wallet_minor == 0:
        return True
    key = f"{_round_reference(order)}:wallet"
    try:
        await wallet_service.fulfil_order(session, hold_id=order.wallet_hold_id, idempotency_key=f"{key}:post", now=now)
        return True
    except ledger_service.HoldExpired:
        await wallet_service.cancel_order(session, hold_id=order.wallet_hold_id, idempotency_key=f"{key}:void", now=now)
    except ledger_service.HoldNotPending:
        pass
    wallet = accounts.user_wallet(order.buyer_id, order.currency)
    posting = Posting(wallet, accounts.order_clearing(order.currency), Money(order.wallet_minor, order.currency))
    try:
        await ledger_service.transfer(
            session,
            postings=[posting],
            idempotency_key=f"{key}:late",
            reference=_reference(order),
            reason=wallet_service.ORDER_PAYMENT,
            now=now,
        )
    except ledger_service.InsufficientFunds:
        log.error("order_wallet_part_lost", order_id=str(order.id))
        return False
    return True


async def _release_wallet(session: AsyncSession, order: Order, *, now: datetime) -> None:
    if order.wallet_hold_id is None:
        return
    with contextlib.suppress(ledger_service.HoldNotPending):  # already released by the ledger's expiry job
        await wallet_service.cancel_order(
            session, hold_id=order.wallet_hold_id, idempotency_key=f"{_round_reference(order)}:wallet:void", now=now
        )


async def _end_round(session: AsyncSession, order: Order, *, failure: str, now: datetime) -> None:
    """The round failed: release the wallet part; the order is payable again, or expired."""
    await _release_wallet(session, order, now=now)
    order.failure_code = failure[:64]
    order.updated_at = now
    if order.expires_at <= now:
        await _expire(session, order, now=now)
        return
    advance_order(order.status, OrderStatus.pending)
    order.status = OrderStatus.pending
    await session.flush()


def split_postings(order: Order) -> list[Posting]:
    """The legs of the order's split: order clearing → each developer, platform fees, VAT payable."""
    cur = order.currency
    clearing = accounts.order_clearing(cur)
    by_developer: dict[str, int] = {}
    for line in order.lines:
        by_developer[line.developer_id] = by_developer.get(line.developer_id, 0) + line.developer_minor
    postings = [
        Posting(clearing, accounts.developer_balance(dev, cur), Money(amount, cur))
        for dev, amount in sorted(by_developer.items())
        if amount > 0
    ]
    if order.fee_minor > 0:
        postings.append(Posting(clearing, accounts.platform_fees(cur), Money(order.fee_minor, cur)))
    if order.vat_minor > 0:
        postings.append(Posting(clearing, accounts.platform_vat_payable(cur), Money(order.vat_minor, cur)))
    return postings


async def _settle(session: AsyncSession, order: Order, *, now: datetime) -> None:
    """Both parts are in order clearing: split the total in ONE transfer, mark paid, emit."""
    _apply_split(order, at=now)  # the tax point is the day the money arrives
    transfer = await ledger_service.transfer(
        session,
        postings=split_postings(order),
        idempotency_key=f"{_reference(order)}:split",
        reference=_reference(order),
        reason=LEDGER_REASON,
        now=now,
        metadata={"buyer_id": order.buyer_id, "vat_percent": str(order.vat_percent)},
    )
    advance_order(order.status, OrderStatus.paid)
    order.status = OrderStatus.paid
    order.split_transfer_id = transfer.id
    order.paid_at = now
    order.failure_code = None
    order.updated_at = now
    await session.flush()
    await outbox_service.emit(
        session,
        events.OrderPaid(
            order_id=order.id,
            buyer_id=order.buyer_id,
            region=order.region,
            currency=order.currency,
            total_minor=order.total_minor,
            wallet_minor=order.wallet_minor,
            card_minor=order.card_minor,
            payment_id=order.payment_id,
            items=[
                events.PaidItem(
                    item_id=line.item_id,
                    kind=line.kind,
                    preorder=line.preorder,
                    release_date=line.release_date.isoformat() if line.release_date else None,
                    developer_id=line.developer_id,
                    price_minor=line.price_minor,
                )
                for line in order.lines
            ],
            occurred_at=now,
        ),
        key=order.id,
    )


async def _refund_required(session: AsyncSession, payment: Payment, *, reason: str, now: datetime) -> None:
    attempt = payment.attempts[-1] if payment.attempts else None
    await outbox_service.emit(
        session,
        events.PaymentRefundRequired(
            payment_id=payment.id,
            attempt_id=attempt.id if attempt else payment.id,
            provider=payment.provider or "",
            amount_minor=payment.captured_minor,
            currency=payment.currency,
            reason=reason,
            occurred_at=now,
        ),
        key=payment.id,
    )


# ---- refunds: where an order payment's money went ------------------------------------------------


def split_sources(order: Order) -> list[tuple[accounts.AccountSpec, Money]]:
    """The accounts the paid order's split credited, with the amounts (they sum to the total)."""
    return [(p.credit, p.amount) for p in split_postings(order)]


async def refund_basis(session: AsyncSession, payment: Payment) -> refund_service.RefundBasis:
    """Refund basis of a payment with purpose ``order`` (registered with the refund module).

    For the payment of a paid order's round, the captured amount is taken back from the accounts
    the split credited (each developer, platform fees, VAT payable) in proportion to the split —
    for a split-tender order the payment is only the provider part, so only its share. The games
    are the order's items. Any other payment of purpose ``order`` (no order, or an order whose
    round did not settle: the money is still in order clearing) keeps the default basis.
    """
    raw = payment.metadata_.get("order_id")
    order = None
    if raw:
        try:
            order = await repository.get(session, uuid.UUID(raw))
        except ValueError:
            order = None
    captured = Money(payment.captured_minor, payment.currency)
    if order is None or order.status is not OrderStatus.paid or order.payment_id != payment.id:
        game = payment.metadata_.get(refund_service.GAME_ID_KEY)
        return refund_service.RefundBasis(
            sources=((payment_service.credited_account(payment), captured),), game_ids=(game,) if game else ()
        )
    legs = split_sources(order)
    shares = captured.allocate([m.amount_minor for _, m in legs])
    return refund_service.RefundBasis(
        sources=tuple((account, share) for (account, _), share in zip(legs, shares, strict=True) if share.is_positive),
        game_ids=tuple(line.item_id for line in order.lines),
    )


refund_service.register_basis(PaymentPurpose.order, refund_basis)


# ---- expiry and cancellation --------------------------------------------------------------------


async def _expire(session: AsyncSession, order: Order, *, now: datetime) -> None:
    advance_order(order.status, OrderStatus.expired)
    order.status = OrderStatus.expired
    order.closed_at = now
    order.updated_at = now
    await session.flush()
    await outbox_service.emit(
        session,
        events.OrderExpired(
            order_id=order.id,
            buyer_id=order.buyer_id,
            total_minor=order.total_minor,
            currency=order.currency,
            occurred_at=now,
        ),
        key=order.id,
    )


async def expire_due(session: AsyncSession, *, now: datetime, limit: int) -> int:
    """Expire unpaid orders past ``expires_at`` (rows locked, others skipped). Orders with a round in
    flight are left to their payment's end. Returns how many expired."""
    orders = await repository.claim_expired(session, now=now, limit=limit)
    for order in orders:
        await _expire(session, order, now=now)
    return len(orders)


async def cancel(session: AsyncSession, *, principal: Principal, order_id: uuid.UUID, now: datetime) -> Order:
    """Cancel an order that is not being paid. Raises OrderNotFound, OrderNotPayable (a round is in
    flight, or it is paid/expired already)."""
    order = await repository.get(session, order_id, lock=True)
    if order is None or not can_see(principal, order):
        raise OrderNotFound()
    if order.status is OrderStatus.canceled:
        return order
    if order.status is not OrderStatus.pending:
        raise OrderNotPayable("only an order that is not being paid can be canceled", order_status=str(order.status))
    order.status = OrderStatus.canceled
    order.closed_at = now
    order.updated_at = now
    await session.flush()
    return order


# ---- wallet top-ups -----------------------------------------------------------------------------


def _top_up_amount(value: MoneyValue, settings: WalletSettings) -> Money:
    try:
        money = value.to_money()
    except (InvalidAmount, UnknownCurrency) as exc:
        raise InvalidTopUpAmount(str(exc)) from None
    if money.currency != settings.currency or not money.is_positive:
        raise InvalidTopUpAmount(f"a top-up is a positive amount in {settings.currency}")
    return money


async def get_top_up(session: AsyncSession, *, principal: Principal, top_up_id: uuid.UUID) -> WalletTopUp:
    """The top-up if it is the principal's own. Raises TopUpNotFound (also for others')."""
    top_up = await repository.get_top_up(session, top_up_id)
    if top_up is None or (principal.kind is PrincipalKind.user and top_up.user_id != principal.subject):
        raise TopUpNotFound()
    return top_up


async def create_top_up(
    session: AsyncSession,
    *,
    principal: Principal,
    data: TopUpCreate,
    claim: idempotency.Claim | None,
    providers: ProviderRegistry,
    clock: Clock,
    settings: WalletSettings,
) -> tuple[WalletTopUp, Payment]:
    """Top up the caller's wallet through a payment (purpose ``wallet_top_up``).

    The limits are checked under the wallet's row lock: today's credited top-ups plus the open
    ones plus this one within the daily limit; the balance plus open top-ups plus this one within
    the maximum balance. The payment module credits the wallet when the payment succeeds — once,
    however many webhooks and status syncs report it. Raises WalletOwnerRequired (not a user),
    InvalidTopUpAmount, WalletLimitExceeded, and the payment errors.
    """
    if principal.kind is not PrincipalKind.user:
        raise wallet_service.WalletOwnerRequired()
    if claim is not None and claim.resumed:
        existing = await repository.top_up_by_request_key(session, claim.id)
        if existing is not None:
            payment = await payment_service.create(
                session,
                principal=principal,
                data=_top_up_payment_request(existing, data),
                purpose=PaymentPurpose.wallet_top_up,
                claim=claim,
                providers=providers,
                clock=clock,
            )
            return await _after_top_up_created(session, existing.id, payment)
    amount = _top_up_amount(data.amount, settings)
    user_id = principal.subject
    now = clock.now()
    await ledger_service.lock_accounts(session, [wallet_service.wallet_account(user_id, settings.currency)])
    state = await wallet_service.get_wallet(session, user_id=user_id, settings=settings, now=now)
    open_amount = Money(
        await repository.open_top_ups_minor(session, user_id=user_id, currency=settings.currency), settings.currency
    )
    left_today = state.limits.top_up_left_today - open_amount
    if amount > left_today:
        raise wallet_service.WalletLimitExceeded(
            limit="daily_top_up",
            limit_amount=state.limits.daily_top_up,
            excess=amount - max(left_today, Money.zero(settings.currency)),
        )
    projected = state.balance.posted + state.balance.pending_in + open_amount + amount
    if projected > state.limits.max_balance:
        raise wallet_service.WalletLimitExceeded(
            limit="max_balance", limit_amount=state.limits.max_balance, excess=projected - state.limits.max_balance
        )
    top_up = WalletTopUp(
        id=uuid.uuid4(),
        user_id=user_id,
        created_by=principal.key,
        amount_minor=amount.amount_minor,
        currency=amount.currency,
        method=str(data.method),
        status=TopUpStatus.pending,
        request_key=claim.id if claim else None,
        created_at=now,
        updated_at=now,
    )
    await repository.add(session, top_up)
    payment = await payment_service.create(
        session,
        principal=principal,
        data=_top_up_payment_request(top_up, data),
        purpose=PaymentPurpose.wallet_top_up,
        claim=claim,
        providers=providers,
        clock=clock,
    )
    return await _after_top_up_created(session, top_up.id, payment)


def _top_up_payment_request(top_up: WalletTopUp, data: TopUpCreate) -> PaymentCreate:
    return PaymentCreate(
        amount=MoneyValue.of(Money(top_up.amount_minor, top_up.currency)),
        method=data.method,
        description=TOP_UP_DESCRIPTION,
        return_url=data.return_url,
        order_reference=f"top_up:{top_up.id}",
        capture=True,
        provider=data.provider,
        payer_phone=data.payer_phone,
        metadata={"top_up_id": str(top_up.id)},
    )


async def _after_top_up_created(
    session: AsyncSession, top_up_id: uuid.UUID, payment: Payment
) -> tuple[WalletTopUp, Payment]:
    top_up = await repository.get_top_up(session, top_up_id, lock=True)
    assert top_up is not None
    if top_up.payment_id is None:
        top_up.payment_id = payment.id
        await session.flush()
    return top_up, payment


async def on_top_up_payment_status(session: AsyncSession, payment: Payment, now: datetime) -> None:
    """Payment status hook for purpose ``wallet_top_up``: the top-up follows its payment's end.

    The wallet itself was credited by the payment module in the same transaction (ledger key
    ``payment:<id>:charge``), so a duplicate report can neither credit twice nor reach here twice.
    """
    status = PaymentStatus(payment.status)
    if status not in _FINAL:
        return
    raw = payment.metadata_.get("top_up_id")
    if not raw:
        return
    try:
        top_up = await repository.get_top_up(session, uuid.UUID(raw), lock=True)
    except ValueError:
        top_up = None
    if top_up is None:
        log.error("top_up_payment_without_top_up", payment_id=str(payment.id))
        return
    if top_up.status is not TopUpStatus.pending:
        return
    top_up.payment_id = top_up.payment_id or payment.id
    top_up.status = TopUpStatus.succeeded if status is PaymentStatus.succeeded else TopUpStatus.failed
    if top_up.status is TopUpStatus.failed:
        top_up.failure_code = (payment.decline_code or f"payment_{status}")[:64]
    top_up.finished_at = now
    top_up.updated_at = now
    await session.flush()


payment_service.on_status_change(PaymentPurpose.wallet_top_up, on_top_up_payment_status)
