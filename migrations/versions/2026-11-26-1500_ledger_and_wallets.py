"""Ledger tables and the posting functions (wallets are ledger accounts: no tables of their own).

Revision ID: 0002_ledger
Revises: 0001_foundation
Create Date: 2026-11-26 15:00:00+00:00

The PL/pgSQL functions make a posting one round trip (see docs/ledger.md):

* ``ledger_post`` — a single-phase transfer or a hold, and the core of the others: validates the
  balance per currency and phase, locks the accounts that need it in id order, folds a locked hot
  account's deltas, checks floors/ceilings, writes the transfer, the in-place balance updates,
  the hot-account deltas and the entries;
* ``ledger_resolve_hold`` — post (fully or partially), void or expire a hold;
* ``ledger_reverse`` — reverse a posted transfer;
* ``ledger_fold_deltas`` — fold hot-account deltas into the account rows (the fold job).

Business rejections are returned as a status (nothing written, the transaction stays usable);
only programming errors (an unbalanced transfer) raise, with SQLSTATE ``LD001``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_ledger"
down_revision: str | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS: tuple[str, ...] = (
    r"""
-- The core of every posting, and the function called for transfers and holds.
-- Entries: (account, signed amount with credits positive, phase). Per account they give
-- d_posted, d_pending_debits and d_pending_credits. In the account's normal orientation,
-- available = posted - pending on the decreasing side must stay >= 0 unless allow_negative, and
-- ceiling value = posted + pending on the increasing side must stay <= the ceiling passed for
-- this call. An account row is locked (in id order) when it is not hot, or when the change
-- lowers its available amount (floor check), or raises it toward a ceiling. Any other change
-- of a hot account is appended to ledger_account_deltas without touching the row: such a change
-- can only raise "available", so a check that misses not yet committed deltas is conservative,
-- and a locked hot account folds its committed deltas before it is checked.
-- Common path: replay check, plan, lock and check, then the writes.
CREATE FUNCTION ledger_post(
    p_id uuid, p_key text, p_fingerprint text, p_kind text, p_pending_id uuid, p_reverses_id uuid,
    p_reference text, p_reason text, p_metadata jsonb, p_effective_at timestamptz, p_expires_at timestamptz,
    p_accounts uuid[], p_amounts bigint[], p_phases text[],
    p_ceiling_accounts uuid[], p_ceilings bigint[],
    OUT status text, OUT transfer_id uuid, OUT detail jsonb)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    v_ids uuid[];
    v_dp bigint[];
    v_dpd bigint[];
    v_dpc bigint[];
    v_cur text[];
    v_found bigint;
    v_unbalanced boolean;
    v_cur_min text;
    v_cur_max text;
    v_sum_nonzero boolean;
    v_lock uuid[];
    v_hot_lock uuid[];
    v_bad record;
    v_twin record;
BEGIN
    SELECT t.id, t.fingerprint INTO v_twin FROM ledger_transfers t WHERE t.idempotency_key = p_key;
    IF FOUND THEN
        status := CASE WHEN v_twin.fingerprint = p_fingerprint THEN 'duplicate' ELSE 'key_reused' END;
        transfer_id := v_twin.id;
        RETURN;
    END IF;
    IF p_kind NOT IN ('transfer', 'hold', 'post', 'void', 'expire', 'reversal')
       OR (p_kind IN ('post', 'void', 'expire')) <> (p_pending_id IS NOT NULL)
       OR (p_kind = 'reversal') <> (p_reverses_id IS NOT NULL)
       OR cardinality(p_accounts) IS DISTINCT FROM cardinality(p_amounts)
       OR cardinality(p_accounts) IS DISTINCT FROM cardinality(p_phases) OR cardinality(p_accounts) = 0 THEN
        RAISE EXCEPTION 'ledger: transfer % has an unknown kind, a kind without its hold or reversed transfer, no entries or ragged arrays', p_key
            USING ERRCODE = 'LD001';
    END IF;

    -- Net change per account, the accounts' flags, and what to lock. The arrays are aligned (one
    -- aggregate pass); their order does not matter: the lock statement sorts.
    SELECT array_agg(c.id), array_agg(c.dp), array_agg(c.dpd), array_agg(c.dpc), array_agg(x.currency),
           count(x.id),
           array_agg(c.id) FILTER (WHERE x.id IS NOT NULL AND (NOT x.hot OR n.needs_lock)),
           array_agg(c.id) FILTER (WHERE x.hot AND n.needs_lock),
           NOT bool_and(c.valid), min(x.currency), max(x.currency),
           sum(c.dp) <> 0 OR sum(c.dpc - c.dpd) <> 0
      INTO v_ids, v_dp, v_dpd, v_dpc, v_cur, v_found, v_lock, v_hot_lock, v_unbalanced, v_cur_min, v_cur_max,
           v_sum_nonzero
      FROM (SELECT e.a AS id,
                   sum(CASE WHEN e.ph = 'posted' THEN e.amt ELSE 0 END)::bigint AS dp,
                   sum(CASE WHEN e.ph = 'pending' AND e.amt < 0 THEN -e.amt
                            WHEN e.ph = 'released' AND e.amt > 0 THEN -e.amt ELSE 0 END)::bigint AS dpd,
                   sum(CASE WHEN e.ph = 'pending' AND e.amt > 0 THEN e.amt
                            WHEN e.ph = 'released' AND e.amt < 0 THEN e.amt ELSE 0 END)::bigint AS dpc,
                   -- each kind writes only its own phases: a transfer or reversal posts, a hold holds,
               -- a void or expiry releases, a post releases and posts
               bool_and(e.amt <> 0 AND CASE p_kind WHEN 'hold' THEN e.ph = 'pending'
                                                   WHEN 'post' THEN e.ph IN ('released', 'posted')
                                                   WHEN 'void' THEN e.ph = 'released'
                                                   WHEN 'expire' THEN e.ph = 'released'
                                                   ELSE e.ph = 'posted' END) AS valid
              FROM unnest(p_accounts, p_amounts, p_phases) AS e(a, amt, ph)
             GROUP BY e.a) c
      LEFT JOIN ledger_accounts x ON x.id = c.id
      LEFT JOIN unnest(p_ceiling_accounts, p_ceilings) AS l(id, ceiling) ON l.id = c.id
      CROSS JOIN LATERAL (
          SELECT coalesce((CASE x.normal_balance WHEN 'credit' THEN c.dp - c.dpd ELSE -c.dp - c.dpc END < 0
                           AND NOT x.allow_negative)
                       OR (CASE x.normal_balance WHEN 'credit' THEN c.dp + c.dpc ELSE -c.dp + c.dpd END > 0
                           AND l.ceiling IS NOT NULL), false)
      ) AS n(needs_lock);

    IF v_found < cardinality(v_ids) THEN
        status := 'unknown_accounts';
        detail := jsonb_build_object('missing', (
            SELECT jsonb_agg(x) FROM unnest(v_ids) AS x
             WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = x)));
        RETURN;
    END IF;
    -- Balanced per currency: posted changes sum to zero, pending credits equal pending debits.
    IF v_cur_min = v_cur_max THEN
        v_unbalanced := v_unbalanced OR v_sum_nonzero;
    ELSE
        v_unbalanced := v_unbalanced OR EXISTS (
            SELECT 1 FROM unnest(v_cur, v_dp, v_dpd, v_dpc) AS c(cur, dp, dpd, dpc)
             GROUP BY c.cur HAVING sum(c.dp) <> 0 OR sum(c.dpc - c.dpd) <> 0);
    END IF;
    IF v_unbalanced THEN
        RAISE EXCEPTION 'ledger: transfer % does not balance per currency, or has a zero or wrong-phase entry', p_key
            USING ERRCODE = 'LD001';
    END IF;

    IF v_lock IS NOT NULL THEN
        IF v_hot_lock IS NOT NULL THEN
            -- Row locks in id order: two postings never wait on each other in a cycle.
            PERFORM 1 FROM ledger_accounts WHERE id = ANY (v_lock) ORDER BY id FOR NO KEY UPDATE;
            -- A new snapshot (new statement) sees every delta committed before we got the locks.
            WITH d AS (
                DELETE FROM ledger_account_deltas WHERE account_id = ANY (v_hot_lock)
                RETURNING account_id, posted, pending_debits, pending_credits
            ), s AS (
                SELECT d.account_id, sum(d.posted)::bigint AS p, sum(d.pending_debits)::bigint AS pd,
                       sum(d.pending_credits)::bigint AS pc
                  FROM d GROUP BY d.account_id
            )
            UPDATE ledger_accounts a
               SET posted = a.posted + s.p, pending_debits = a.pending_debits + s.pd,
                   pending_credits = a.pending_credits + s.pc, version = a.version + 1, updated_at = now()
              FROM s WHERE a.id = s.account_id;
        END IF;
        -- Lock (id order; a no-op for rows locked above) and check in one statement.
        WITH a AS MATERIALIZED (
            SELECT x.id, x.code, x.currency, x.normal_balance, x.allow_negative, x.posted, x.pending_debits,
                   x.pending_credits
              FROM ledger_accounts x WHERE x.id = ANY (v_lock) ORDER BY x.id FOR NO KEY UPDATE
        )
        SELECT a.id, a.code, a.currency, v.available, v.d_available, v.ceiling_value, v.d_ceiling, l.ceiling
          INTO v_bad
          FROM a
          JOIN unnest(v_ids, v_dp, v_dpd, v_dpc) AS c(id, dp, dpd, dpc) ON c.id = a.id
          LEFT JOIN unnest(p_ceiling_accounts, p_ceilings) AS l(id, ceiling) ON l.id = a.id
          CROSS JOIN LATERAL (
              SELECT CASE a.normal_balance WHEN 'credit' THEN a.posted - a.pending_debits
                                           ELSE -a.posted - a.pending_credits END,
                     CASE a.normal_balance WHEN 'credit' THEN c.dp - c.dpd ELSE -c.dp - c.dpc END,
                     CASE a.normal_balance WHEN 'credit' THEN a.posted + a.pending_credits
                                           ELSE -a.posted + a.pending_debits END,
                     CASE a.normal_balance WHEN 'credit' THEN c.dp + c.dpc ELSE -c.dp + c.dpd END
          ) AS v(available, d_available, ceiling_value, d_ceiling)
         WHERE (NOT a.allow_negative AND v.d_available < 0 AND v.available + v.d_available < 0)
            OR (l.ceiling IS NOT NULL AND v.d_ceiling > 0 AND v.ceiling_value + v.d_ceiling > l.ceiling)
         LIMIT 1;
        IF FOUND THEN
            IF NOT (v_bad.ceiling IS NOT NULL AND v_bad.d_ceiling > 0
                    AND v_bad.ceiling_value + v_bad.d_ceiling > v_bad.ceiling) THEN
                status := 'insufficient_funds';
                detail := jsonb_build_object(
                    'account_id', v_bad.id, 'code', v_bad.code, 'currency', v_bad.currency,
                    'available', v_bad.available, 'required', -v_bad.d_available,
                    'shortfall', -(v_bad.available + v_bad.d_available));
            ELSE
                status := 'limit_exceeded';
                detail := jsonb_build_object(
                    'account_id', v_bad.id, 'code', v_bad.code, 'currency', v_bad.currency,
                    'limit', v_bad.ceiling, 'current', v_bad.ceiling_value, 'increase', v_bad.d_ceiling,
                    'excess', v_bad.ceiling_value + v_bad.d_ceiling - v_bad.ceiling);
            END IF;
            RETURN;
        END IF;
    END IF;

    INSERT INTO ledger_transfers (id, idempotency_key, fingerprint, kind, pending_id, reverses_id,
                                  reference, reason, metadata, effective_at)
    VALUES (p_id, p_key, p_fingerprint, p_kind, p_pending_id, p_reverses_id,
            p_reference, p_reason, p_metadata, p_effective_at)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        -- A concurrent twin with the same key committed while we waited on its index entry.
        SELECT t.id, t.fingerprint INTO v_twin FROM ledger_transfers t WHERE t.idempotency_key = p_key;
        status := CASE WHEN v_twin.fingerprint = p_fingerprint THEN 'duplicate' ELSE 'key_reused' END;
        transfer_id := v_twin.id;
        RETURN;
    END IF;

    IF v_lock IS NOT NULL THEN
        UPDATE ledger_accounts a
           SET posted = a.posted + c.dp, pending_debits = a.pending_debits + c.dpd,
               pending_credits = a.pending_credits + c.dpc, version = a.version + 1, updated_at = now()
          FROM unnest(v_ids, v_dp, v_dpd, v_dpc) AS c(id, dp, dpd, dpc)
         WHERE a.id = c.id AND c.id = ANY (v_lock);
    END IF;
    IF cardinality(v_ids) > coalesce(cardinality(v_lock), 0) THEN
        INSERT INTO ledger_account_deltas (account_id, posted, pending_debits, pending_credits)
        SELECT c.id, c.dp, c.dpd, c.dpc
          FROM unnest(v_ids, v_dp, v_dpd, v_dpc) AS c(id, dp, dpd, dpc)
         WHERE NOT (c.id = ANY (coalesce(v_lock, '{}'::uuid[])))
           AND (c.dp <> 0 OR c.dpd <> 0 OR c.dpc <> 0);
    END IF;
    IF p_kind = 'hold' THEN
        INSERT INTO ledger_holds (transfer_id, status, expires_at) VALUES (p_id, 'pending', p_expires_at);
    END IF;
    INSERT INTO ledger_entries (transfer_id, account_id, amount, currency, phase, effective_at)
    SELECT p_id, e.a, e.amt, k.cur, e.ph, p_effective_at
      FROM unnest(p_accounts, p_amounts, p_phases) WITH ORDINALITY AS e(a, amt, ph, n)
      JOIN unnest(v_ids, v_cur) AS k(id, cur) ON k.id = e.a
     ORDER BY e.n;

    status := 'created';
    transfer_id := p_id;
END
$fn$;
""",
    r"""
-- Post (fully, or partially with p_accounts/p_amounts), void or expire a hold. Posting releases
-- every held leg and posts the given amounts; each posted amount has the sign of its held leg
-- and is at most as large. The hold row is locked first, so a hold is resolved exactly once.
CREATE FUNCTION ledger_resolve_hold(
    p_hold_id uuid, p_action text, p_id uuid, p_key text, p_fingerprint text,
    p_reference text, p_reason text, p_metadata jsonb, p_effective_at timestamptz,
    p_accounts uuid[], p_amounts bigint[],
    OUT status text, OUT transfer_id uuid, OUT detail jsonb)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    v_twin record;
    v_hold record;
    v_acc uuid[];
    v_amt bigint[];
    v_ph text[];
BEGIN
    IF p_action NOT IN ('post', 'void', 'expire') THEN
        RAISE EXCEPTION 'ledger: unknown hold action %', p_action USING ERRCODE = 'LD001';
    END IF;
    SELECT t.id, t.fingerprint INTO v_twin FROM ledger_transfers t WHERE t.idempotency_key = p_key;
    IF FOUND THEN
        status := CASE WHEN v_twin.fingerprint = p_fingerprint THEN 'duplicate' ELSE 'key_reused' END;
        transfer_id := v_twin.id;
        RETURN;
    END IF;

    SELECT h.status, h.expires_at, t.reference, t.reason INTO v_hold
      FROM ledger_holds h JOIN ledger_transfers t ON t.id = h.transfer_id
     WHERE h.transfer_id = p_hold_id
       FOR NO KEY UPDATE OF h;
    IF NOT FOUND THEN
        status := 'hold_not_found';
        RETURN;
    END IF;
    IF v_hold.status <> 'pending' THEN
        status := 'hold_not_pending';
        detail := jsonb_build_object('status', v_hold.status);
        RETURN;
    END IF;
    IF p_action = 'post' AND v_hold.expires_at IS NOT NULL AND v_hold.expires_at <= p_effective_at THEN
        status := 'hold_expired';
        detail := jsonb_build_object('expires_at', v_hold.expires_at);
        RETURN;
    END IF;
    IF p_action = 'expire' AND (v_hold.expires_at IS NULL OR v_hold.expires_at > p_effective_at) THEN
        status := 'hold_not_expired';
        detail := jsonb_build_object('expires_at', v_hold.expires_at);
        RETURN;
    END IF;

    SELECT array_agg(e.account_id ORDER BY e.id), array_agg(-e.amount ORDER BY e.id),
           array_agg('released'::text ORDER BY e.id)
      INTO v_acc, v_amt, v_ph
      FROM ledger_entries e WHERE e.transfer_id = p_hold_id AND e.phase = 'pending';

    IF p_action = 'post' THEN
        IF p_accounts IS NULL THEN
            SELECT v_acc || array_agg(e.account_id ORDER BY e.id), v_amt || array_agg(e.amount ORDER BY e.id),
                   v_ph || array_agg('posted'::text ORDER BY e.id)
              INTO v_acc, v_amt, v_ph
              FROM ledger_entries e WHERE e.transfer_id = p_hold_id AND e.phase = 'pending';
        ELSE
            IF cardinality(p_accounts) IS DISTINCT FROM cardinality(p_amounts) OR EXISTS (
                SELECT 1
                  FROM (SELECT g.a, sum(g.amt) AS s FROM unnest(p_accounts, p_amounts) AS g(a, amt) GROUP BY g.a) g
                  LEFT JOIN (SELECT e.account_id AS a, sum(e.amount) AS s FROM ledger_entries e
                              WHERE e.transfer_id = p_hold_id AND e.phase = 'pending' GROUP BY e.account_id) h
                         ON h.a = g.a
                 WHERE h.s IS NULL OR (g.s <> 0 AND sign(g.s) <> sign(h.s)) OR abs(g.s) > abs(h.s)) THEN
                status := 'invalid_amounts';
                RETURN;
            END IF;
            SELECT v_acc || coalesce(array_agg(g.a ORDER BY g.n), '{}'),
                   v_amt || coalesce(array_agg(g.amt ORDER BY g.n), '{}'),
                   v_ph || coalesce(array_agg('posted'::text ORDER BY g.n), '{}')
              INTO v_acc, v_amt, v_ph
              FROM unnest(p_accounts, p_amounts) WITH ORDINALITY AS g(a, amt, n)
             WHERE g.amt <> 0;
        END IF;
    END IF;

    SELECT r.status, r.transfer_id, r.detail INTO status, transfer_id, detail
      FROM ledger_post(p_id, p_key, p_fingerprint, p_action, p_hold_id, NULL,
                       coalesce(p_reference, v_hold.reference), coalesce(p_reason, v_hold.reason), p_metadata,
                       p_effective_at, NULL, v_acc, v_amt, v_ph, NULL, NULL) AS r;
    IF status = 'created' THEN
        UPDATE ledger_holds
           SET status = CASE p_action WHEN 'post' THEN 'posted' WHEN 'void' THEN 'voided' ELSE 'expired' END,
               resolved_by = p_id, resolved_at = p_effective_at
         WHERE ledger_holds.transfer_id = p_hold_id;
    END IF;
END
$fn$;
""",
    r"""
-- Reverse a posted transfer (kind 'transfer' or 'post') once, with the opposite posted entries.
CREATE FUNCTION ledger_reverse(
    p_orig_id uuid, p_id uuid, p_key text, p_fingerprint text,
    p_reference text, p_reason text, p_metadata jsonb, p_effective_at timestamptz,
    OUT status text, OUT transfer_id uuid, OUT detail jsonb)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    v_twin record;
    v_orig record;
    v_acc uuid[];
    v_amt bigint[];
    v_ph text[];
BEGIN
    SELECT t.id, t.fingerprint INTO v_twin FROM ledger_transfers t WHERE t.idempotency_key = p_key;
    IF FOUND THEN
        status := CASE WHEN v_twin.fingerprint = p_fingerprint THEN 'duplicate' ELSE 'key_reused' END;
        transfer_id := v_twin.id;
        RETURN;
    END IF;
    -- The row lock serialises concurrent reversals of the same transfer.
    SELECT t.kind, t.reference, t.reason INTO v_orig
      FROM ledger_transfers t WHERE t.id = p_orig_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        status := 'transfer_not_found';
        RETURN;
    END IF;
    IF v_orig.kind NOT IN ('transfer', 'post') THEN
        status := 'not_reversible';
        detail := jsonb_build_object('kind', v_orig.kind);
        RETURN;
    END IF;
    SELECT t.id INTO v_twin FROM ledger_transfers t WHERE t.reverses_id = p_orig_id;
    IF FOUND THEN
        status := 'already_reversed';
        detail := jsonb_build_object('reversal_id', v_twin.id);
        RETURN;
    END IF;
    SELECT array_agg(e.account_id ORDER BY e.id), array_agg(-e.amount ORDER BY e.id),
           array_agg('posted'::text ORDER BY e.id)
      INTO v_acc, v_amt, v_ph
      FROM ledger_entries e WHERE e.transfer_id = p_orig_id AND e.phase = 'posted';
    IF v_acc IS NULL THEN
        status := 'not_reversible';
        detail := jsonb_build_object('kind', v_orig.kind);
        RETURN;
    END IF;
    SELECT r.status, r.transfer_id, r.detail INTO status, transfer_id, detail
      FROM ledger_post(p_id, p_key, p_fingerprint, 'reversal', NULL, p_orig_id,
                       coalesce(p_reference, v_orig.reference), coalesce(p_reason, 'reversal'), p_metadata,
                       p_effective_at, NULL, v_acc, v_amt, v_ph, NULL, NULL) AS r;
END
$fn$;
""",
    r"""
-- Fold committed hot-account deltas into the account rows; returns the number of deltas folded.
-- Locks the account rows first (id order, like postings), then deletes their deltas: the same
-- order as a posting that locks a hot account to debit it, so the two never deadlock.
CREATE FUNCTION ledger_fold_deltas(p_max_accounts integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    v_ids uuid[];
    v_n integer;
BEGIN
    SELECT array_agg(d.account_id ORDER BY d.account_id) INTO v_ids
      FROM (SELECT DISTINCT x.account_id FROM ledger_account_deltas x LIMIT p_max_accounts) d;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM ledger_accounts WHERE id = ANY (v_ids) ORDER BY id FOR NO KEY UPDATE;
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
""",
)

DROP_FUNCTIONS = (
    "DROP FUNCTION IF EXISTS ledger_fold_deltas(integer)",
    "DROP FUNCTION IF EXISTS ledger_reverse(uuid, uuid, text, text, text, text, jsonb, timestamptz)",
    "DROP FUNCTION IF EXISTS ledger_resolve_hold(uuid, text, uuid, text, text, text, text, jsonb, timestamptz, "
    "uuid[], bigint[])",
    "DROP FUNCTION IF EXISTS ledger_post(uuid, text, text, text, uuid, uuid, text, text, jsonb, timestamptz, "
    "timestamptz, uuid[], bigint[], text[], uuid[], bigint[])",
)


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table(
        "ledger_account_deltas",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("posted", sa.BigInteger(), nullable=False),
        sa.Column("pending_debits", sa.BigInteger(), nullable=False),
        sa.Column("pending_credits", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_account_deltas")),
    )
    op.create_index("ix_ledger_account_deltas_account_id", "ledger_account_deltas", ["account_id"], unique=False)
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("normal_balance", sa.String(length=6), nullable=False),
        sa.Column("allow_negative", sa.Boolean(), nullable=False),
        sa.Column("hot", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("posted", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("pending_debits", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("pending_credits", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "allow_negative OR (CASE normal_balance WHEN 'credit' THEN posted - pending_debits ELSE -posted - pending_credits END) >= 0",
            name=op.f("ck_ledger_accounts_available_non_negative"),
        ),
        sa.CheckConstraint("normal_balance IN ('debit', 'credit')", name=op.f("ck_ledger_accounts_normal_balance")),
        sa.CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'revenue', 'expense')", name=op.f("ck_ledger_accounts_type")
        ),
        sa.CheckConstraint(
            "pending_debits >= 0 AND pending_credits >= 0", name=op.f("ck_ledger_accounts_pending_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", "currency", name=op.f("uq_ledger_accounts_code_currency")),
        postgresql_with={"fillfactor": "70"},
    )
    op.create_table(
        "ledger_entries",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("phase IN ('posted', 'pending', 'released')", name=op.f("ck_ledger_entries_phase")),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_ledger_entries_amount_non_zero")),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("pk_ledger_entries")),
    )
    op.create_index("ix_ledger_entries_transfer_id", "ledger_entries", ["transfer_id"], unique=False)
    op.create_table(
        "ledger_transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255, collation="C"), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("pending_id", sa.Uuid(), nullable=True),
        sa.Column("reverses_id", sa.Uuid(), nullable=True),
        sa.Column("reference", sa.String(length=200, collation="C"), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind IN ('transfer', 'hold', 'post', 'void', 'expire', 'reversal')", name=op.f("ck_ledger_transfers_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transfers")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_transfers_idempotency_key")),
    )
    op.create_index(
        "ix_ledger_transfers_pending_id",
        "ledger_transfers",
        ["pending_id"],
        unique=False,
        postgresql_where=sa.text("pending_id IS NOT NULL"),
    )
    op.create_index("ix_ledger_transfers_reference", "ledger_transfers", ["reference"], unique=False)
    op.create_index(
        "uq_ledger_transfers_reverses_id",
        "ledger_transfers",
        ["reverses_id"],
        unique=True,
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
    )
    op.create_table(
        "ledger_holds",
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'posted', 'voided', 'expired')", name=op.f("ck_ledger_holds_status")),
        sa.ForeignKeyConstraint(
            ["resolved_by"], ["ledger_transfers.id"], name=op.f("fk_ledger_holds_resolved_by_ledger_transfers")
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["ledger_transfers.id"], name=op.f("fk_ledger_holds_transfer_id_ledger_transfers")
        ),
        sa.PrimaryKeyConstraint("transfer_id", name=op.f("pk_ledger_holds")),
    )
    op.create_index(
        "ix_ledger_holds_expires_at_pending",
        "ledger_holds",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    # ### end Alembic commands ###
    for statement in FUNCTIONS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_FUNCTIONS:
        op.execute(statement)
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index(
        "ix_ledger_holds_expires_at_pending", table_name="ledger_holds", postgresql_where=sa.text("status = 'pending'")
    )
    op.drop_table("ledger_holds")
    op.drop_index(
        "uq_ledger_transfers_reverses_id",
        table_name="ledger_transfers",
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
    )
    op.drop_index("ix_ledger_transfers_reference", table_name="ledger_transfers")
    op.drop_index(
        "ix_ledger_transfers_pending_id",
        table_name="ledger_transfers",
        postgresql_where=sa.text("pending_id IS NOT NULL"),
    )
    op.drop_table("ledger_transfers")
    op.drop_index("ix_ledger_entries_transfer_id", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_accounts")
    op.drop_index("ix_ledger_account_deltas_account_id", table_name="ledger_account_deltas")
    op.drop_table("ledger_account_deltas")
    # ### end Alembic commands ###
