"""Builders and audit queries shared by the ledger tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from payment_service.kit.money import Money
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.ledger.accounts import AccountSpec
from payment_service.ledger.repository import Executor
from payment_service.ledger.schemas import Posting

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def rub(kopecks: int) -> Money:
    return Money(kopecks, "RUB")


async def fund(executor: Executor, account: AccountSpec, kopecks: int, *, key: str, now: datetime = NOW) -> None:
    """Money comes in from the outside world (a top-up)."""
    await ledger_service.transfer(
        executor,
        postings=[Posting(accounts.external_world(account.currency), account, Money(kopecks, account.currency))],
        idempotency_key=key,
        reference=f"test:{key}",
        reason="test_funding",
        now=now,
    )


_AUDIT_SUMS = """
    SELECT a.currency,
           sum(a.posted + coalesce(d.p, 0))::bigint AS posted,
           sum(a.pending_credits + coalesce(d.pc, 0))::bigint AS pending_credits,
           sum(a.pending_debits + coalesce(d.pd, 0))::bigint AS pending_debits
      FROM ledger_accounts a
      LEFT JOIN (SELECT account_id, sum(posted) p, sum(pending_debits) pd, sum(pending_credits) pc
                   FROM ledger_account_deltas GROUP BY account_id) d ON d.account_id = a.id
     GROUP BY a.currency
"""

_AUDIT_NEGATIVE = """
    SELECT a.code FROM ledger_accounts a
      LEFT JOIN (SELECT account_id, sum(posted) p, sum(pending_debits) pd, sum(pending_credits) pc
                   FROM ledger_account_deltas GROUP BY account_id) d ON d.account_id = a.id
     WHERE NOT a.allow_negative
       AND CASE a.normal_balance
               WHEN 'credit' THEN a.posted + coalesce(d.p, 0) - a.pending_debits - coalesce(d.pd, 0)
               ELSE -a.posted - coalesce(d.p, 0) - a.pending_credits - coalesce(d.pc, 0)
           END < 0
"""

_AUDIT_JOURNAL = """
    SELECT a.code FROM ledger_accounts a
      LEFT JOIN (SELECT account_id, sum(posted) p, sum(pending_debits) pd, sum(pending_credits) pc
                   FROM ledger_account_deltas GROUP BY account_id) d ON d.account_id = a.id
      LEFT JOIN (SELECT account_id,
                        sum(amount) FILTER (WHERE phase = 'posted') AS p,
                        sum(CASE WHEN phase = 'pending' AND amount < 0 THEN -amount
                                 WHEN phase = 'released' AND amount > 0 THEN -amount ELSE 0 END) AS pd,
                        sum(CASE WHEN phase = 'pending' AND amount > 0 THEN amount
                                 WHEN phase = 'released' AND amount < 0 THEN amount ELSE 0 END) AS pc
                   FROM ledger_entries GROUP BY account_id) e ON e.account_id = a.id
     WHERE a.posted + coalesce(d.p, 0) <> coalesce(e.p, 0)
        OR a.pending_debits + coalesce(d.pd, 0) <> coalesce(e.pd, 0)
        OR a.pending_credits + coalesce(d.pc, 0) <> coalesce(e.pc, 0)
"""

_AUDIT_TRANSFERS = """
    SELECT t.idempotency_key FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id
     GROUP BY t.id, t.idempotency_key, e.currency, e.phase HAVING sum(e.amount) <> 0
"""

_AUDIT_HOLDS = """
    SELECT h.transfer_id FROM ledger_holds h
      JOIN ledger_entries held ON held.transfer_id = h.transfer_id AND held.phase = 'pending'
      LEFT JOIN ledger_entries posted ON posted.transfer_id = h.resolved_by AND posted.phase = 'posted'
                                     AND posted.account_id = held.account_id
     WHERE h.status = 'posted'
       AND (sign(coalesce(posted.amount, held.amount)) <> sign(held.amount)
            OR abs(coalesce(posted.amount, 0)) > abs(held.amount))
"""


async def _rows(executor: Executor, query: str) -> list[Any]:
    from payment_service.ledger.repository import _fetch

    return await _fetch(executor, query)


async def audit(executor: Executor) -> list[str]:
    """G1 over the whole ledger; returns the problems found (empty when all holds).

    * per currency, posted balances sum to zero and pending credits equal pending debits;
    * no account that may not go negative is negative (available, i.e. net of holds);
    * every account's cached balance (+ unfolded deltas) equals the sum of its entries;
    * every transfer balances per currency and phase;
    * every posted hold posted at most the held amount, on the held side.
    """
    problems: list[str] = []
    for row in await _rows(executor, _AUDIT_SUMS):
        if row["posted"] != 0 or row["pending_credits"] != row["pending_debits"]:
            problems.append(f"{row['currency']} does not sum to zero: {dict(row)}")
    problems += [f"negative: {r['code']}" for r in await _rows(executor, _AUDIT_NEGATIVE)]
    problems += [f"balance differs from journal: {r['code']}" for r in await _rows(executor, _AUDIT_JOURNAL)]
    problems += [f"unbalanced transfer: {r['idempotency_key']}" for r in await _rows(executor, _AUDIT_TRANSFERS)]
    problems += [f"hold posted more than held: {r['transfer_id']}" for r in await _rows(executor, _AUDIT_HOLDS)]
    return problems
