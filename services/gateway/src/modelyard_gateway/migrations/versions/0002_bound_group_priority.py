"""Bound groups order deployments by a device-label priority.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"

# IF [NOT] EXISTS: databases created by an early build of 0001 may already have some of these.


def upgrade() -> None:
    op.execute("ALTER TABLE gateway.model_groups ADD COLUMN IF NOT EXISTS endpoint_priority jsonb")
    op.execute("ALTER TABLE gateway.model_instances ADD COLUMN IF NOT EXISTS device_labels jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE gateway.model_groups DROP COLUMN IF EXISTS endpoint_priority")
    op.execute("ALTER TABLE gateway.model_instances DROP COLUMN IF EXISTS device_labels")
