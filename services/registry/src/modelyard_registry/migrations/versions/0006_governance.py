"""Governance: each workspace's policy gate (enforce, warn, off) and who set it.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS registry.workspace_policies (
            workspace varchar(200) PRIMARY KEY,
            gate varchar(10) NOT NULL CHECK (gate IN ('enforce', 'warn', 'off')),
            comment text NOT NULL DEFAULT '',
            updated_by varchar(200) NOT NULL,
            updated_at timestamptz NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS registry.workspace_policies")
