"""ledger_resolve_hold, ledger_reverse: a concurrent twin with the same key replays

Both functions looked the idempotency key up only BEFORE locking the hold (or the reversed
transfer). Two identical calls with the same key at the same moment both missed it; the second
then waited for the lock and, once the first committed, found the hold no longer pending (or the
transfer already reversed) and failed with ``hold_not_pending`` / ``already_reversed`` instead of
replaying the first result as a sequential retry does. Now the key is looked up again right after
the lock is taken: that statement sees the twin's committed transfer and returns ``duplicate``
(or ``key_reused`` for other content). ``ledger_post`` already handled its twin (ON CONFLICT).

Revision ID: 0010_ledger_race_fixes
Revises: 0009_ledger_fold_skip_locked
Create Date: 2026-11-26 17:20:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_ledger_race_fixes"
down_revision: str | None = "0009_ledger_fold_skip_locked"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECHECK = """\
    -- A twin with the same key that resolved/reversed it while we waited for the lock has
    -- committed: this new statement sees its transfer, so replay it as a sequential retry would.
    SELECT t.id, t.fingerprint INTO v_twin FROM ledger_transfers t WHERE t.idempotency_key = p_key;
    IF FOUND THEN
        status := CASE WHEN v_twin.fingerprint = p_fingerprint THEN 'duplicate' ELSE 'key_reused' END;
        transfer_id := v_twin.id;
        RETURN;
    END IF;
"""

RESOLVE_HOLD = r"""
-- Post (fully, or partially with p_accounts/p_amounts), void or expire a hold. Posting releases
-- every held leg and posts the given amounts; each posted amount has the sign of its held leg
-- and is at most as large. The hold row is locked first, so a hold is resolved exactly once.
CREATE OR REPLACE FUNCTION ledger_resolve_hold(
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
    -- A twin with the same key that resolved/reversed it while we waited for the lock has
    -- committed: this new statement sees its transfer, so replay it as a sequential retry would.
    SELECT t.id, t.fingerprint INTO v_twin FROM ledger_transfers t WHERE t.idempotency_key = p_key;
    IF FOUND THEN
        status := CASE WHEN v_twin.fingerprint = p_fingerprint THEN 'duplicate' ELSE 'key_reused' END;
        transfer_id := v_twin.id;
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
"""

REVERSE = r"""
-- Reverse a posted transfer (kind 'transfer' or 'post') once, with the opposite posted entries.
CREATE OR REPLACE FUNCTION ledger_reverse(
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
    -- A twin with the same key that resolved/reversed it while we waited for the lock has
    -- committed: this new statement sees its transfer, so replay it as a sequential retry would.
    SELECT t.id, t.fingerprint INTO v_twin FROM ledger_transfers t WHERE t.idempotency_key = p_key;
    IF FOUND THEN
        status := CASE WHEN v_twin.fingerprint = p_fingerprint THEN 'duplicate' ELSE 'key_reused' END;
        transfer_id := v_twin.id;
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
"""


def _previous(function: str) -> str:
    """The body before this revision: the same function without the second key lookup."""
    assert function.count(RECHECK) == 1
    return function.replace(RECHECK, "")


def upgrade() -> None:
    op.execute(RESOLVE_HOLD)
    op.execute(REVERSE)


def downgrade() -> None:
    op.execute(_previous(RESOLVE_HOLD))
    op.execute(_previous(REVERSE))
