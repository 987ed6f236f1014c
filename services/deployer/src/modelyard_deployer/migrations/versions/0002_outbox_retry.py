"""Outbox rows retried with backoff.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# IF [NOT] EXISTS: databases created by an early build of 0001 may already have some of these.


def upgrade() -> None:
    op.execute("ALTER TABLE deployer.outbox ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE deployer.outbox DROP COLUMN IF EXISTS next_attempt_at")
