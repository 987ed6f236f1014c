"""Outbox rows retried with backoff; keyset pagination indexes.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from modelyard_common.infrastructure import execute_ddl
from modelyard_common.outbox import outbox_retry_ddl

revision: str = "0002"
down_revision: str | None = "0001"

# IF [NOT] EXISTS: databases created by an early build of 0001 may already have some of these
# (and 0001 creates the outbox as it is now).


def upgrade() -> None:
    execute_ddl(outbox_retry_ddl("registry"))
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_ai_models_page_name "
        "ON registry.ai_models (workspace, name, id)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_ai_models_page_created "
        "ON registry.ai_models (workspace, created_at, id)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_ai_models_page_updated "
        "ON registry.ai_models (workspace, updated_at, id)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_ai_systems_page_name "
        "ON registry.ai_systems (workspace, name, id)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_ai_systems_page_created "
        "ON registry.ai_systems (workspace, created_at, id)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_ai_systems_page_updated "
        "ON registry.ai_systems (workspace, updated_at, id)"
    )


def downgrade() -> None:
    execute_ddl(outbox_retry_ddl("registry", upgrade=False))
