"""donation_create_from_wallet: a wallet donation in one statement (one round trip, autocommit)

A wallet donation used to take eight round trips inside the request's transaction (BEGIN, the
Idempotency-Key claim, the ledger posting, the alert position, the donation row, the outbox row,
the stored response, COMMIT), most of the API's CPU for this request went into the ORM around
them. This function does the whole request as one statement, which Postgres runs as its own
transaction:

1. takes the Idempotency-Key's advisory lock (``key_busy`` if another request holds it) and
   returns ``key_exists`` if the key is known (the caller then runs the general path, which
   replays, refuses or resumes);
2. calls ``ledger_post`` (the ledger's own function: ``only ledger/ writes money tables`` holds)
   and returns its status unless ``created`` (nothing was written then: short funds, an account
   not created yet …; the caller runs the general path, which creates accounts or renders the
   error);
3. takes the streamer's next alert position, inserts the donation (``p_donation``: every column
   as JSON, plus the position and the transfer id), the ``donation.processed`` event (+ NOTIFY)
   and the finished Idempotency-Key with the response (``p_body_head || position ||
   p_body_tail``: the position is the only part of the response not known before).

Any error aborts the statement: nothing of it persists.

Revision ID: 0011_donation_wallet_at_once
Revises: 0010_ledger_race_fixes
Create Date: 2026-11-26 19:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_donation_wallet_at_once"
down_revision: str | None = "0010_ledger_race_fixes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION donation_create_from_wallet(
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
    PERFORM pg_notify('outbox', '');

    body := p_body_head || convert_to(seq::text, 'UTF8') || p_body_tail;
    INSERT INTO idempotency_keys (principal, key, id, method, path, fingerprint, recovery_point, locked_at,
                                  response_status, response_headers, response_body, created_at, completed_at)
    VALUES (p_principal, p_key, p_key_id, p_method, p_path, p_fingerprint, 'finished', NULL,
            p_response_status, p_response_headers, body, p_now, p_now);
    status := 'created';
END
$fn$;
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION donation_create_from_wallet(text, text, uuid, text, text, text, timestamptz, smallint, jsonb, "
        "bytea, bytea, jsonb, uuid, text, text, text, text, jsonb, uuid[], bigint[], text[], uuid, text, text, text, "
        "integer, text, jsonb, text)"
    )
