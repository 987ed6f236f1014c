"""Model usage: gateway requests, errors and tokens per model per UTC day.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS registry.model_usage (
            workspace varchar(100) NOT NULL,
            model_id uuid NOT NULL,
            day date NOT NULL,
            requests bigint NOT NULL DEFAULT 0,
            errors bigint NOT NULL DEFAULT 0,
            prompt_tokens bigint NOT NULL DEFAULT 0,
            completion_tokens bigint NOT NULL DEFAULT 0,
            total_tokens bigint NOT NULL DEFAULT 0,
            CONSTRAINT pk_model_usage PRIMARY KEY (workspace, model_id, day)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS registry.model_usage")
