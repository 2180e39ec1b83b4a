"""orders: orders of catalog items with their lines (price and split per line), and wallet top-ups

Revision ID: 0004_orders
Revises: 0003_payments
Create Date: 2026-11-26 16:20:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_orders"
down_revision: str | None = "0003_payments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("vat_percent", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("vat_minor", sa.BigInteger(), nullable=False),
        sa.Column("developer_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("tender", sa.String(length=16), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("wallet_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("card_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("wallet_hold_id", sa.Uuid(), nullable=True),
        sa.Column("split_transfer_id", sa.Uuid(), nullable=True),
        sa.Column("rounds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("request_key", sa.Uuid(), nullable=True),
        sa.Column("pay_request_key", sa.Uuid(), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("(status = 'paid') = (paid_at IS NOT NULL)", name=op.f("ck_orders_paid_at_when_paid")),
        sa.CheckConstraint("total_minor > 0", name=op.f("ck_orders_total_positive")),
        sa.CheckConstraint(
            "vat_minor >= 0 AND developer_minor >= 0 AND fee_minor >= 0 AND vat_minor + developer_minor + fee_minor = total_minor",
            name=op.f("ck_orders_split_sums_to_total"),
        ),
        sa.CheckConstraint(
            "wallet_minor >= 0 AND card_minor >= 0 AND wallet_minor + card_minor IN (0, total_minor)",
            name=op.f("ck_orders_tender_covers_total"),
        ),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_orders_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("request_key", name=op.f("uq_orders_request_key")),
    )
    op.create_index("ix_orders_buyer_created", "orders", ["buyer_id", "created_at", "id"], unique=False)
    op.create_index("ix_orders_payment", "orders", ["payment_id"], unique=False)
    op.create_index(
        "ix_orders_unpaid_expiry",
        "orders",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "wallet_top_ups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("request_key", sa.Uuid(), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_wallet_top_ups_amount_positive")),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_wallet_top_ups_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_top_ups")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_wallet_top_ups_payment_id")),
        sa.UniqueConstraint("request_key", name=op.f("uq_wallet_top_ups_request_key")),
    )
    op.create_index(
        "ix_wallet_top_ups_open",
        "wallet_top_ups",
        ["user_id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_wallet_top_ups_user_created", "wallet_top_ups", ["user_id", "created_at", "id"], unique=False)
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("base_game_id", sa.String(length=64), nullable=True),
        sa.Column("developer_id", sa.String(length=64), nullable=False),
        sa.Column("developer_percent", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("preorder", sa.Boolean(), nullable=False),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("list_price_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_percent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("vat_minor", sa.BigInteger(), nullable=False),
        sa.Column("developer_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "developer_percent >= 0 AND developer_percent <= 100", name=op.f("ck_order_lines_share_is_percent")
        ),
        sa.CheckConstraint(
            "price_minor > 0 AND list_price_minor >= price_minor", name=op.f("ck_order_lines_price_positive")
        ),
        sa.CheckConstraint(
            "vat_minor >= 0 AND developer_minor >= 0 AND fee_minor >= 0 AND vat_minor + developer_minor + fee_minor = price_minor",
            name=op.f("ck_order_lines_split_sums_to_price"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_lines_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("order_id", "position", name=op.f("pk_order_lines")),
    )


def downgrade() -> None:
    op.drop_table("order_lines")
    op.drop_index("ix_wallet_top_ups_user_created", table_name="wallet_top_ups")
    op.drop_index("ix_wallet_top_ups_open", table_name="wallet_top_ups", postgresql_where=sa.text("status = 'pending'"))
    op.drop_table("wallet_top_ups")
    op.drop_index("ix_orders_unpaid_expiry", table_name="orders", postgresql_where=sa.text("status = 'pending'"))
    op.drop_index("ix_orders_payment", table_name="orders")
    op.drop_index("ix_orders_buyer_created", table_name="orders")
    op.drop_table("orders")
