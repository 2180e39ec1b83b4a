"""ledger_fold_deltas: skip hot accounts that a posting holds locked

The fold used to wait for every hot account it meant to fold, in id order. While it waited
behind one account (a payout debiting a streamer balance, say) it kept all the others it had
already locked, stalling every debit of those; and a transaction that locked two hot accounts in
two separate ledger calls could deadlock with it. Now it locks only the accounts that are free
(``SKIP LOCKED``) and folds only their deltas; the rest wait for the next run. Balances are exact
either way (reads add the unfolded deltas).

Revision ID: 0009_ledger_fold_skip_locked
Revises: 0008_merge
Create Date: 2026-11-26 17:10:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_ledger_fold_skip_locked"
down_revision: str | None = "0008_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLD = r"""
CREATE OR REPLACE FUNCTION ledger_fold_deltas(p_max_accounts integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    v_ids uuid[];
    v_n integer;
BEGIN
    SELECT array_agg(l.id ORDER BY l.id) INTO v_ids
      FROM (SELECT a.id FROM ledger_accounts a
             WHERE a.id IN (SELECT DISTINCT x.account_id FROM ledger_account_deltas x LIMIT p_max_accounts)
             ORDER BY a.id
             FOR NO KEY UPDATE SKIP LOCKED) l;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    WITH d AS (
        DELETE FROM ledger_account_deltas WHERE account_id = ANY (v_ids)
        RETURNING account_id, posted, pending_debits, pending_credits
    ), s AS (
        SELECT d.account_id, count(*) AS n, sum(d.posted)::bigint AS p, sum(d.pending_debits)::bigint AS pd,
               sum(d.pending_credits)::bigint AS pc
          FROM d GROUP BY d.account_id
    ), u AS (
        UPDATE ledger_accounts a
           SET posted = a.posted + s.p, pending_debits = a.pending_debits + s.pd,
               pending_credits = a.pending_credits + s.pc, version = a.version + 1, updated_at = now()
          FROM s WHERE a.id = s.account_id
        RETURNING s.n
    )
    SELECT coalesce(sum(u.n), 0)::integer INTO v_n FROM u;
    RETURN v_n;
END
$fn$;
"""

PREVIOUS = FOLD.replace(
    """    SELECT array_agg(l.id ORDER BY l.id) INTO v_ids
      FROM (SELECT a.id FROM ledger_accounts a
             WHERE a.id IN (SELECT DISTINCT x.account_id FROM ledger_account_deltas x LIMIT p_max_accounts)
             ORDER BY a.id
             FOR NO KEY UPDATE SKIP LOCKED) l;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
""",
    """    SELECT array_agg(d.account_id ORDER BY d.account_id) INTO v_ids
      FROM (SELECT DISTINCT x.account_id FROM ledger_account_deltas x LIMIT p_max_accounts) d;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM ledger_accounts WHERE id = ANY (v_ids) ORDER BY id FOR NO KEY UPDATE;
""",
)


def upgrade() -> None:
    op.execute(FOLD)


def downgrade() -> None:
    op.execute(PREVIOUS)
