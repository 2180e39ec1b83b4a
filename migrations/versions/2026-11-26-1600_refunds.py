"""refunds

Revision ID: 0005_refunds
Revises: 0003_payments
Create Date: 2026-11-26 16:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_refunds"
down_revision: str | None = "0003_payments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("payer_id", sa.String(length=100), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("destination", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("findings", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("playtime_minutes", sa.Integer(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=128), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.String(length=500), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("provider_refund_id", sa.String(length=128), nullable=True),
        sa.Column("provider_status", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("sources", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("ledger_hold_id", sa.Uuid(), nullable=True),
        sa.Column("request_key", sa.Uuid(), nullable=True),
        sa.Column("sync_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_called_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_refunds_amount_positive")),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("provider", "provider_refund_id", name=op.f("uq_refunds_provider_provider_refund_id")),
        sa.UniqueConstraint("request_key", name=op.f("uq_refunds_request_key")),
    )
    op.create_index("ix_refunds_payer_created", "refunds", ["payer_id", "created_at", "id"], unique=False)
    op.create_index("ix_refunds_payment", "refunds", ["payment_id"], unique=False)
    op.create_index(
        "ix_refunds_review_queue",
        "refunds",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending_review'"),
    )
    op.create_index(
        "ix_refunds_sync",
        "refunds",
        ["next_sync_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('processing','unknown')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_refunds_sync", table_name="refunds", postgresql_where=sa.text("status IN ('processing','unknown')")
    )
    op.drop_index(
        "ix_refunds_review_queue", table_name="refunds", postgresql_where=sa.text("status = 'pending_review'")
    )
    op.drop_index("ix_refunds_payment", table_name="refunds")
    op.drop_index("ix_refunds_payer_created", table_name="refunds")
    op.drop_table("refunds")
