"""donations: the donation log (one row per donation, the streamer's alert log) and per-streamer state

Revision ID: 0006_donations
Revises: 0003_payments
Create Date: 2026-11-26 16:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_donations"
down_revision: str | None = "0003_payments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "donation_streamers",
        sa.Column("streamer_id", sa.String(length=64), nullable=False),
        sa.Column("last_alert_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("overlay_token_hash", sa.String(length=64), nullable=True),
        sa.Column("overlay_token_rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("streamer_id", name=op.f("pk_donation_streamers")),
        sa.UniqueConstraint("overlay_token_hash", name=op.f("uq_donation_streamers_overlay_token_hash")),
    )
    op.create_table(
        "donations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("streamer_id", sa.String(length=64), nullable=False),
        sa.Column("donor_id", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("streamer_minor", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("moderation_flags", postgresql.ARRAY(sa.String(length=32)), server_default="{}", nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("request_key", sa.Uuid(), nullable=True),
        sa.Column("external_ref", sa.String(length=256), nullable=True),
        sa.Column("ledger_transfer_id", sa.Uuid(), nullable=True),
        sa.Column("alert_seq", sa.BigInteger(), nullable=True),
        sa.Column("alert_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clawed_back_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(alert_seq IS NULL) = (status IN ('pending', 'failed'))", name=op.f("ck_donations_alert_once_paid")
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_donations_amount_positive")),
        sa.CheckConstraint(
            "clawed_back_minor >= 0 AND clawed_back_minor <= amount_minor",
            name=op.f("ck_donations_clawback_within_amount"),
        ),
        sa.CheckConstraint("fee_minor + streamer_minor = amount_minor", name=op.f("ck_donations_split_sums_to_amount")),
        sa.CheckConstraint("fee_minor >= 0 AND streamer_minor >= 0", name=op.f("ck_donations_split_not_negative")),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_donations_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_donations")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_donations_external_ref")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_donations_payment_id")),
        sa.UniqueConstraint("request_key", name=op.f("uq_donations_request_key")),
        sa.UniqueConstraint("streamer_id", "alert_seq", name="uq_donations_alert_log"),
    )
    op.create_index(
        "ix_donations_alert_unpublished",
        "donations",
        ["processed_at"],
        unique=False,
        postgresql_where=sa.text("alert_seq IS NOT NULL AND alert_published_at IS NULL"),
    )
    op.create_index("ix_donations_donor_created", "donations", ["donor_id", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_donations_donor_created", table_name="donations")
    op.drop_index(
        "ix_donations_alert_unpublished",
        table_name="donations",
        postgresql_where=sa.text("alert_seq IS NOT NULL AND alert_published_at IS NULL"),
    )
    op.drop_table("donations")
    op.drop_table("donation_streamers")
