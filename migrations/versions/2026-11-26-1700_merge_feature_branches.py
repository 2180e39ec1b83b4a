"""merge the feature branches (orders, refunds, donations, payouts) into one line

Revision ID: 0008_merge
Revises: 0004_orders, 0005_refunds, 0006_donations, 0007_payouts
Create Date: 2026-11-26 17:00:00+00:00
"""

from collections.abc import Sequence

revision: str = "0008_merge"
down_revision: str | Sequence[str] | None = ("0004_orders", "0005_refunds", "0006_donations", "0007_payouts")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
