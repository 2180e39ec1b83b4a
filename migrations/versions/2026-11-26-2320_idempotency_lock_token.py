"""idempotency_keys.lock_token: which claim holds an in-progress key

A request whose claim was taken over (it outlived ``idempotency.lock_timeout_seconds``) could still
store its response over the new holder's, and an unlock retried in the background after a failed
request could free the lock of the retry that had taken the key over meanwhile. Each claim now
holds the lock with a token of its own; progress, completion and unlock require it.

Revision ID: 0013_idempotency_lock_token
Revises: 0012_hot_path_functions
Create Date: 2026-11-26 23:20:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_idempotency_lock_token"
down_revision: str | None = "0012_hot_path_functions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("lock_token", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("idempotency_keys", "lock_token")
