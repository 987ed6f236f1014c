"""Endpoint events of one deployment apply in order: the last applied sequence per deployment.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS gateway.endpoint_sequences (
            deployment_id uuid NOT NULL,
            sequence bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_endpoint_sequences PRIMARY KEY (deployment_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS gateway.endpoint_sequences")
