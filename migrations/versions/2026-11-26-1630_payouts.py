"""payouts: payee accounts, payout batches, payouts and their provider attempts, referral payout requests

Revision ID: 0007_payouts
Revises: 0003_payments
Create Date: 2026-11-26 16:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_payouts"
down_revision: str | None = "0003_payments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payee_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("kyc_status", sa.String(length=16), nullable=False),
        sa.Column("kyc_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kyc_updated_by", sa.String(length=128), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("details_ciphertext", sa.Text(), nullable=True),
        sa.Column("details_masked", sa.String(length=64), nullable=True),
        sa.Column("details_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("min_payout_minor", sa.BigInteger(), nullable=False),
        sa.Column("schedule", sa.String(length=16), nullable=False),
        sa.Column("schedule_day", sa.Integer(), nullable=True),
        sa.Column("last_scheduled_period", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(schedule = 'manual' AND schedule_day IS NULL) OR (schedule = 'weekly' AND schedule_day BETWEEN 1 AND 7) OR (schedule = 'monthly' AND schedule_day BETWEEN 1 AND 28)",
            name=op.f("ck_payee_accounts_schedule_day_fits"),
        ),
        sa.CheckConstraint(
            "(method IS NULL) = (details_ciphertext IS NULL)", name=op.f("ck_payee_accounts_method_has_details")
        ),
        sa.CheckConstraint("min_payout_minor > 0", name=op.f("ck_payee_accounts_min_payout_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payee_accounts")),
        sa.UniqueConstraint("user_id", name=op.f("uq_payee_accounts_user_id")),
    )
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payouts_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_batches")),
        sa.UniqueConstraint("reference", name=op.f("uq_payout_batches_reference")),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payee_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=160), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("balance_account", sa.String(length=128), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("destination_masked", sa.String(length=64), nullable=False),
        sa.Column("details_ciphertext", sa.Text(), nullable=False),
        sa.Column("description", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.String(length=500), nullable=True),
        sa.Column("ledger_hold_id", sa.Uuid(), nullable=True),
        sa.Column("attempts_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_payout_id", sa.String(length=128), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payouts_amount_positive")),
        sa.ForeignKeyConstraint(["batch_id"], ["payout_batches.id"], name=op.f("fk_payouts_batch_id_payout_batches")),
        sa.ForeignKeyConstraint(["payee_id"], ["payee_accounts.id"], name=op.f("fk_payouts_payee_id_payee_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("reference", name=op.f("uq_payouts_reference")),
    )
    op.create_index(
        "ix_payouts_due", "payouts", ["next_attempt_at"], unique=False, postgresql_where=sa.text("status = 'pending'")
    )
    op.create_index(
        "ix_payouts_open",
        "payouts",
        ["status", "created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending','processing')"),
    )
    op.create_index("ix_payouts_user_created", "payouts", ["user_id", "created_at", "id"], unique=False)
    op.create_table(
        "payout_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payout_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_payout_id", sa.String(length=128), nullable=True),
        sa.Column("provider_status", sa.String(length=64), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sync_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["payout_id"], ["payouts.id"], name=op.f("fk_payout_attempts_payout_id_payouts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_attempts")),
        sa.UniqueConstraint("payout_id", "number", name=op.f("uq_payout_attempts_payout_id_number")),
        sa.UniqueConstraint(
            "provider", "provider_payout_id", name=op.f("uq_payout_attempts_provider_provider_payout_id")
        ),
    )
    op.create_index(
        "ix_payout_attempts_sync",
        "payout_attempts",
        ["next_sync_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('created','pending','unknown')"),
    )
    op.create_table(
        "referral_payouts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("referral_id", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("payout_id", sa.Uuid(), nullable=True),
        sa.Column("credit_transfer_id", sa.Uuid(), nullable=True),
        sa.Column("reversal_transfer_id", sa.Uuid(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(answered_at IS NULL) = (status = 'pending')", name=op.f("ck_referral_payouts_answered_once_final")
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_referral_payouts_amount_positive")),
        sa.ForeignKeyConstraint(["payout_id"], ["payouts.id"], name=op.f("fk_referral_payouts_payout_id_payouts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_payouts")),
        sa.UniqueConstraint("payout_id", name=op.f("uq_referral_payouts_payout_id")),
        sa.UniqueConstraint("request_id", name=op.f("uq_referral_payouts_request_id")),
    )
    op.create_index("ix_referral_payouts_user", "referral_payouts", ["user_id", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_referral_payouts_user", table_name="referral_payouts")
    op.drop_table("referral_payouts")
    op.drop_index(
        "ix_payout_attempts_sync",
        table_name="payout_attempts",
        postgresql_where=sa.text("status IN ('created','pending','unknown')"),
    )
    op.drop_table("payout_attempts")
    op.drop_index("ix_payouts_user_created", table_name="payouts")
    op.drop_index(
        "ix_payouts_open", table_name="payouts", postgresql_where=sa.text("status IN ('pending','processing')")
    )
    op.drop_index("ix_payouts_due", table_name="payouts", postgresql_where=sa.text("status = 'pending'"))
    op.drop_table("payouts")
    op.drop_table("payout_batches")
    op.drop_table("payee_accounts")
