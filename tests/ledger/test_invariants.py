"""Property-based test: random sequences of ledger operations against real Postgres and a model.

A Hypothesis state machine drives transfers (multi-leg, multi-currency), holds, full and partial
posts, voids, expiry, reversals, folds of hot-account deltas, replays with the same idempotency
key and reuse of a key for different content, over accounts of every kind (wallets, hot credit
accounts, accounts allowed to go negative, a debit-normal clearing account, two currencies).
After every step it checks G1 in the database (per-currency sums are zero, pending credits equal
pending debits, no account that may not go negative is negative, cached balances equal the
journal, every transfer balances, no hold posted more than it held) and that every balance equals
the model's: a replay that changed anything, or a lost or double-applied update, shows up there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from payment_service.kit.money import Money
from payment_service.ledger import accounts, repository, tasks
from payment_service.ledger import service as ledger_service
from payment_service.ledger.accounts import AccountSpec
from payment_service.ledger.schemas import Posting
from payment_service.models.ledger import NormalBalance
from tests.ledger.helpers import NOW, audit

T = TypeVar("T")

RUB = [
    accounts.user_wallet("w0"),
    accounts.user_wallet("w1"),
    accounts.user_wallet("w2"),
    accounts.gift_card("g0"),
    accounts.streamer_balance("s0"),
    accounts.platform_fees(),
    accounts.order_clearing(),
    accounts.provider_clearing("yookassa"),
    accounts.platform_goodwill(),
    accounts.external_world(),
]
KZT = [accounts.user_wallet("w0", "KZT"), accounts.platform_fees("KZT"), accounts.external_world("KZT")]
ALL = RUB + KZT
BY_ID = {a.id: a for a in ALL}

amounts = st.integers(min_value=1, max_value=5_000)


def pair(group: list[AccountSpec]) -> st.SearchStrategy[tuple[AccountSpec, AccountSpec]]:
    return st.tuples(st.sampled_from(group), st.sampled_from(group)).filter(lambda p: p[0].id != p[1].id)


postings = st.lists(
    st.one_of(pair(RUB), pair(KZT)).flatmap(lambda p: amounts.map(lambda a: (p[0], p[1], a))),
    min_size=1,
    max_size=3,
)


@dataclass
class Runtime:
    loop: asyncio.AbstractEventLoop
    conn: asyncpg.Connection

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


@dataclass
class HoldModel:
    id: uuid.UUID
    postings: list[tuple[AccountSpec, AccountSpec, int]]
    expires_at: datetime | None
    status: str = "pending"


@dataclass
class Op:
    """A successful operation, kept to be replayed with its key."""

    kind: str
    key: str
    transfer_id: uuid.UUID
    args: dict[str, Any] = field(default_factory=dict)


Change = dict[uuid.UUID, tuple[int, int, int]]


def _posting_objs(items: list[tuple[AccountSpec, AccountSpec, int]]) -> list[Posting]:
    return [Posting(d, c, Money(a, d.currency)) for d, c, a in items]


def _entries_to_change(entries: list[tuple[uuid.UUID, int, str]]) -> Change:
    change: dict[uuid.UUID, list[int]] = {}
    for account, amount, phase in entries:
        dp, dpd, dpc = change.setdefault(account, [0, 0, 0])
        if phase == "posted":
            dp += amount
        elif phase == "pending":
            dpd, dpc = (dpd - amount, dpc) if amount < 0 else (dpd, dpc + amount)
        else:  # released
            dpd, dpc = (dpd - amount, dpc) if amount > 0 else (dpd, dpc + amount)
        change[account] = [dp, dpd, dpc]
    return {k: (v[0], v[1], v[2]) for k, v in change.items()}


def _legs(items: list[tuple[AccountSpec, AccountSpec, int]], phase: str) -> list[tuple[uuid.UUID, int, str]]:
    net: dict[uuid.UUID, int] = {}
    for d, c, a in items:
        net[d.id] = net.get(d.id, 0) - a
        net[c.id] = net.get(c.id, 0) + a
    return [(k, v, phase) for k, v in net.items() if v]


class LedgerMachine(RuleBasedStateMachine):
    runtime: ClassVar[Runtime]

    def __init__(self) -> None:
        super().__init__()
        self.rt = self.runtime
        self.rt.run(
            self.rt.conn.execute(
                "TRUNCATE ledger_accounts, ledger_transfers, ledger_entries, ledger_holds, ledger_account_deltas"
            )
        )
        self.balances: dict[uuid.UUID, tuple[int, int, int]] = {a.id: (0, 0, 0) for a in ALL}
        self.now = NOW
        self.n = 0
        self.holds: list[HoldModel] = []
        self.reversible: list[tuple[uuid.UUID, list[tuple[uuid.UUID, int, str]]]] = []
        self.reversed: set[uuid.UUID] = set()
        self.ops: list[Op] = []
        # Every wallet starts with some money so that spends succeed as well as fail.
        self._do_transfer([(accounts.external_world(), a, 20_000) for a in RUB[:5]], expect_ok=True)
        self._do_transfer([(accounts.external_world("KZT"), KZT[0], 20_000)], expect_ok=True)

    # ---- model ------------------------------------------------------------------------------------

    def _key(self, kind: str) -> str:
        self.n += 1
        return f"{kind}:{self.n}"

    def _available(self, account: AccountSpec, state: tuple[int, int, int]) -> int:
        posted, pd, pc = state
        return posted - pd if account.normal_balance is NormalBalance.credit else -posted - pc

    def _violates(self, change: Change) -> bool:
        for account_id, (dp, dpd, dpc) in change.items():
            account = BY_ID[account_id]
            before = self.balances[account_id]
            after = (before[0] + dp, before[1] + dpd, before[2] + dpc)
            delta = self._available(account, after) - self._available(account, before)
            if not account.allow_negative and delta < 0 and self._available(account, after) < 0:
                return True
        return False

    def _apply(self, change: Change) -> None:
        for account_id, (dp, dpd, dpc) in change.items():
            p, pd, pc = self.balances[account_id]
            self.balances[account_id] = (p + dp, pd + dpd, pc + dpc)

    # ---- operations -------------------------------------------------------------------------------

    def _do_transfer(self, items: list[tuple[AccountSpec, AccountSpec, int]], *, expect_ok: bool = False) -> None:
        legs = _legs(items, "posted")
        key = self._key("t")
        kwargs: dict[str, Any] = {
            "postings": _posting_objs(items),
            "idempotency_key": key,
            "reference": f"ref:{key}",
            "reason": "test",
        }
        if not legs:
            with pytest.raises(ValueError, match="cancel out"):
                self.rt.run(ledger_service.transfer(self.rt.conn, now=self.now, **kwargs))
            return
        change = _entries_to_change(legs)
        if self._violates(change):
            assert not expect_ok
            with pytest.raises(ledger_service.InsufficientFunds):
                self.rt.run(ledger_service.transfer(self.rt.conn, now=self.now, **kwargs))
            return
        t = self.rt.run(ledger_service.transfer(self.rt.conn, now=self.now, **kwargs))
        assert not t.replayed
        self._apply(change)
        self.reversible.append((t.id, legs))
        self.ops.append(Op("transfer", key, t.id, kwargs))

    @rule(items=postings, fold=st.booleans())
    def transfer(self, items: list[tuple[AccountSpec, AccountSpec, int]], fold: bool) -> None:
        self._do_transfer(items)
        if fold:  # the fold job runs between postings at random moments
            self.rt.run(tasks.fold_deltas(self.rt.conn, now=self.now))

    @rule(
        debit=st.sampled_from(RUB),
        credits=st.lists(st.tuples(st.sampled_from(RUB), amounts), min_size=1, max_size=3),
        expires_in=st.one_of(st.none(), st.integers(min_value=5, max_value=240)),
    )
    def hold(self, debit: AccountSpec, credits: list[tuple[AccountSpec, int]], expires_in: int | None) -> None:
        seen: set[uuid.UUID] = set()
        items = []
        for credit, amount in credits:
            if credit.id != debit.id and credit.id not in seen:
                seen.add(credit.id)
                items.append((debit, credit, amount))
        if not items:
            return
        key = self._key("h")
        expires_at = self.now + timedelta(minutes=expires_in) if expires_in else None
        kwargs: dict[str, Any] = {
            "postings": _posting_objs(items),
            "idempotency_key": key,
            "reference": f"ref:{key}",
            "reason": "test_hold",
            "expires_at": expires_at,
        }
        change = _entries_to_change(_legs(items, "pending"))
        if self._violates(change):
            with pytest.raises(ledger_service.InsufficientFunds):
                self.rt.run(ledger_service.hold(self.rt.conn, now=self.now, **kwargs))
            return
        h = self.rt.run(ledger_service.hold(self.rt.conn, now=self.now, **kwargs))
        self._apply(change)
        self.holds.append(HoldModel(h.id, items, expires_at))
        self.ops.append(Op("hold", key, h.id, kwargs))

    def _pending(self) -> list[HoldModel]:
        return [h for h in self.holds if h.status == "pending"]

    @precondition(lambda self: self._pending())
    @rule(data=st.data(), how=st.sampled_from(["post", "post_partial", "post_too_much", "void"]))
    def resolve_a_hold(self, data: st.DataObject, how: str) -> None:
        h = data.draw(st.sampled_from(self._pending()))
        if how == "void":
            self._void(h)
        else:
            self._post(h, data, partial=how != "post", overdraw=how == "post_too_much")

    def _post(self, h: HoldModel, data: st.DataObject, *, partial: bool, overdraw: bool) -> None:
        key = self._key("p")
        items: list[tuple[AccountSpec, AccountSpec, int]] | None = None
        if partial:
            items = [(d, c, data.draw(st.integers(min_value=0, max_value=a))) for d, c, a in h.postings]
            if overdraw:
                d, c, a = h.postings[0]
                items[0] = (d, c, a + 1)
            items = [i for i in items if i[2] > 0] or [(h.postings[0][0], h.postings[0][1], 1)]
        kwargs: dict[str, Any] = {
            "hold_id": h.id,
            "idempotency_key": key,
            "postings": _posting_objs(items) if items is not None else None,
        }
        if h.expires_at is not None and h.expires_at <= self.now:
            with pytest.raises(ledger_service.HoldExpired):
                self.rt.run(ledger_service.post_hold(self.rt.conn, now=self.now, **kwargs))
            return
        held = {a: amt for a, amt, _ in _legs(h.postings, "pending")}
        posted_legs = _legs(items if items is not None else h.postings, "posted")
        if any(a not in held or abs(v) > abs(held[a]) or (v > 0) != (held[a] > 0) for a, v, _ in posted_legs):
            with pytest.raises(ledger_service.InvalidHoldAmounts):
                self.rt.run(ledger_service.post_hold(self.rt.conn, now=self.now, **kwargs))
            return
        t = self.rt.run(ledger_service.post_hold(self.rt.conn, now=self.now, **kwargs))
        released = [(a, -amt, "released") for a, amt in held.items()]
        self._apply(_entries_to_change(released + posted_legs))
        h.status = "posted"
        self.reversible.append((t.id, posted_legs))
        self.ops.append(Op("post", key, t.id, kwargs))

    def _void(self, h: HoldModel) -> None:
        key = self._key("v")
        kwargs: dict[str, Any] = {"hold_id": h.id, "idempotency_key": key}
        t = self.rt.run(ledger_service.void_hold(self.rt.conn, now=self.now, **kwargs))
        self._apply(_entries_to_change([(a, -amt, "released") for a, amt, _ in _legs(h.postings, "pending")]))
        h.status = "voided"
        self.ops.append(Op("void", key, t.id, kwargs))

    @precondition(lambda self: any(h.expires_at is not None for h in self._pending()))
    @rule(minutes=st.integers(min_value=1, max_value=30))
    def time_passes_and_holds_expire(self, minutes: int) -> None:
        self.rt.run(tasks.fold_deltas(self.rt.conn, now=self.now))
        self.now += timedelta(minutes=minutes)
        due = {h.id for h in self._pending() if h.expires_at is not None and h.expires_at <= self.now}

        found = self.rt.run(repository.expired_holds(self.rt.conn, now=self.now, limit=1_000))

        assert set(found) == due
        for h in self._pending():
            if h.id in due:
                self.rt.run(ledger_service.expire_hold(self.rt.conn, hold_id=h.id, now=self.now))
                self._apply(_entries_to_change([(a, -amt, "released") for a, amt, _ in _legs(h.postings, "pending")]))
                h.status = "expired"

    @precondition(lambda self: any(t not in self.reversed for t, _ in self.reversible))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        transfer_id, legs = data.draw(st.sampled_from([r for r in self.reversible if r[0] not in self.reversed]))
        key = self._key("r")
        kwargs: dict[str, Any] = {"transfer_id": transfer_id, "idempotency_key": key}
        change = _entries_to_change([(a, -amt, "posted") for a, amt, _ in legs])
        if self._violates(change):
            with pytest.raises(ledger_service.InsufficientFunds):
                self.rt.run(ledger_service.reverse(self.rt.conn, now=self.now, **kwargs))
            return
        t = self.rt.run(ledger_service.reverse(self.rt.conn, now=self.now, **kwargs))
        self._apply(change)
        self.reversed.add(transfer_id)
        self.ops.append(Op("reverse", key, t.id, kwargs))

    @precondition(lambda self: self.ops)
    @rule(data=st.data(), reuse_for_other_content=st.booleans())
    def retry_with_a_used_key(self, data: st.DataObject, reuse_for_other_content: bool) -> None:
        op = data.draw(st.sampled_from(self.ops))
        if reuse_for_other_content and op.kind == "transfer":
            first = op.args["postings"][0]
            changed = [Posting(first.debit, first.credit, first.amount + Money(1, first.amount.currency))]
            with pytest.raises(ledger_service.LedgerIdempotencyConflict):
                self.rt.run(ledger_service.transfer(self.rt.conn, now=self.now, **{**op.args, "postings": changed}))
            return
        call = {
            "transfer": ledger_service.transfer,
            "hold": ledger_service.hold,
            "post": ledger_service.post_hold,
            "void": ledger_service.void_hold,
            "reverse": ledger_service.reverse,
        }[op.kind]

        again = self.rt.run(call(self.rt.conn, now=self.now + timedelta(seconds=1), **op.args))

        assert again.replayed
        assert again.id == op.transfer_id

    # ---- invariants -------------------------------------------------------------------------------

    @invariant()
    def ledger_is_consistent_and_matches_the_model(self) -> None:
        assert self.rt.run(audit(self.rt.conn)) == []
        stored = self.rt.run(ledger_service.balances(self.rt.conn, ALL))
        for account in ALL:
            b = stored[account.id]
            posted, pd, pc = self.balances[account.id]
            raw_pending = (b.pending_out, b.pending_in)
            expected_pending = (pd, pc) if account.normal_balance is NormalBalance.credit else (pc, pd)
            assert b.raw_posted == posted, account.code
            assert tuple(m.amount_minor for m in raw_pending) == expected_pending, account.code
            if not account.allow_negative:
                assert b.available.amount_minor >= 0, account.code


def test_random_ledger_operations_keep_every_invariant(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(database_url))
    try:
        LedgerMachine.runtime = Runtime(loop, conn)
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=50,
                stateful_step_count=50,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        loop.run_until_complete(
            conn.execute(
                "TRUNCATE ledger_accounts, ledger_transfers, ledger_entries, ledger_holds, ledger_account_deltas"
            )
        )
        loop.run_until_complete(conn.close())
        loop.close()
