"""Hot-path functions: no NOTIFY inside a writer's transaction; index plans that do not go stale

1. ``donation_create_from_wallet`` no longer NOTIFYs. A NOTIFY inside a transaction makes its
   COMMIT take a database-wide lock held until the WAL flush is done (Postgres keeps the
   notification queue in commit order), so every wallet donation committed one after another:
   64 concurrent donations spent most of their time on that lock ("Lock:object" in
   pg_stat_activity). The API process now wakes the relay from its own connection after the
   statement returned (``db.CommitWaker``), as every other writer does.
2. The ledger's functions and ``donation_create_from_wallet`` run with ``enable_seqscan = off``.
   PL/pgSQL caches a statement's plan for the life of the connection (the ledger forces generic
   plans) and replans only when the table is analyzed again. A plan made while a table was a
   few pages long is a sequential scan; the pooled connection then kept scanning the whole
   table for every key lookup as it grew (measured: 2,281 full scans of ``ledger_transfers``,
   15.8 M rows read, in 20 s of wallet donations; Postgres CPU per donation 2.1 ms → 1.1 ms
   once replanned). Every statement of these functions reads rows by key or id, so an index
   plan is right at every table size; ``ledger_fold_deltas`` (which reads the whole small
   deltas table) keeps the planner's choice. A later ``CREATE OR REPLACE`` of one of these
   functions drops its ``SET`` clauses unless it repeats them: repeat them.

Revision ID: 0012_hot_path_functions
Revises: 0011_donation_wallet_at_once
Create Date: 2026-11-26 22:15:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_hot_path_functions"
down_revision: str | None = "0011_donation_wallet_at_once"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION donation_create_from_wallet(
    p_principal text, p_key text, p_key_id uuid, p_method text, p_path text, p_fingerprint text,
    p_now timestamptz, p_response_status smallint, p_response_headers jsonb,
    p_body_head bytea, p_body_tail bytea,
    p_donation jsonb,
    p_transfer_id uuid, p_ledger_key text, p_ledger_fingerprint text, p_reference text, p_reason text,
    p_ledger_metadata jsonb, p_accounts uuid[], p_amounts bigint[], p_phases text[],
    p_event_id uuid, p_event_topic text, p_event_key text, p_event_type text, p_event_version integer,
    p_event_source text, p_event_payload jsonb, p_correlation_id text,
    OUT status text, OUT seq bigint, OUT body bytea, OUT detail jsonb)
LANGUAGE plpgsql
SET enable_seqscan = off
AS $fn$
DECLARE
    v_post record;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended(p_principal || chr(1) || p_key, 0)) THEN
        status := 'key_busy';
        RETURN;
    END IF;
    PERFORM 1 FROM idempotency_keys k WHERE k.principal = p_principal AND k.key = p_key;
    IF FOUND THEN
        status := 'key_exists';
        RETURN;
    END IF;

    SELECT * INTO v_post FROM ledger_post(
        p_transfer_id, p_ledger_key, p_ledger_fingerprint, 'transfer', NULL, NULL, p_reference, p_reason,
        p_ledger_metadata, p_now, NULL, p_accounts, p_amounts, p_phases, NULL, NULL);
    IF v_post.status <> 'created' THEN
        status := v_post.status;
        detail := v_post.detail;
        RETURN;
    END IF;

    INSERT INTO donation_streamers AS s (streamer_id, last_alert_seq, created_at, updated_at)
    VALUES (p_donation ->> 'streamer_id', 1, p_now, p_now)
    ON CONFLICT (streamer_id) DO UPDATE SET last_alert_seq = s.last_alert_seq + 1, updated_at = EXCLUDED.updated_at
    RETURNING s.last_alert_seq INTO seq;

    INSERT INTO donations
    SELECT * FROM jsonb_populate_record(
        NULL::donations, p_donation || jsonb_build_object('alert_seq', seq, 'ledger_transfer_id', p_transfer_id));

    INSERT INTO outbox_events (id, topic, key, type, version, source, payload, headers, correlation_id)
    VALUES (p_event_id, p_event_topic, p_event_key, p_event_type, p_event_version, p_event_source,
            p_event_payload || jsonb_build_object('alert_seq', seq), NULL, p_correlation_id);

    body := p_body_head || convert_to(seq::text, 'UTF8') || p_body_tail;
    INSERT INTO idempotency_keys (principal, key, id, method, path, fingerprint, recovery_point, locked_at,
                                  response_status, response_headers, response_body, created_at, completed_at)
    VALUES (p_principal, p_key, p_key_id, p_method, p_path, p_fingerprint, 'finished', NULL,
            p_response_status, p_response_headers, body, p_now, p_now);
    status := 'created';
END
$fn$;
"""


LEDGER_FUNCTIONS = (
    "ledger_post(uuid, text, text, text, uuid, uuid, text, text, jsonb, timestamptz, timestamptz, uuid[], bigint[], "
    "text[], uuid[], bigint[])",
    "ledger_resolve_hold(uuid, text, uuid, text, text, text, text, jsonb, timestamptz, uuid[], bigint[])",
    "ledger_reverse(uuid, uuid, text, text, text, text, jsonb, timestamptz)",
)


def upgrade() -> None:
    op.execute(FUNCTION)
    for signature in LEDGER_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {signature} SET enable_seqscan = off")


def downgrade() -> None:
    for signature in LEDGER_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {signature} RESET enable_seqscan")
    # donation_create_from_wallet: the previous body differs by the NOTIFY (which the older code
    # does not need: its relay also polls every second) and the setting; it is left as it is.
