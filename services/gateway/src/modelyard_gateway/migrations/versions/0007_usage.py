"""Usage per registry model per day, and the outbox its `gateway.usage.recorded` events leave by.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from modelyard_common.infrastructure import (
    OUTBOX,
    execute_ddl,
    infrastructure_ddl,
    infrastructure_drop_ddl,
)

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    execute_ddl(infrastructure_ddl("gateway", OUTBOX))
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS gateway.model_usage (
            workspace varchar(200) NOT NULL,
            model_id uuid NOT NULL,
            day date NOT NULL,
            requests bigint NOT NULL DEFAULT 0,
            errors bigint NOT NULL DEFAULT 0,
            prompt_tokens bigint NOT NULL DEFAULT 0,
            completion_tokens bigint NOT NULL DEFAULT 0,
            total_tokens bigint NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_model_usage PRIMARY KEY (workspace, model_id, day)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS gateway.model_usage")
    execute_ddl(infrastructure_drop_ddl("gateway", OUTBOX))
