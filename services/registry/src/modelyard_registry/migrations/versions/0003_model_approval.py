"""Model approval: state, conditions, who requested and who decided.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"

COLUMNS = {
    "approval": "varchar(16) NOT NULL DEFAULT 'draft'",
    "approval_conditions": "jsonb",
    "approval_requested_by": "varchar(200)",
    "approval_requested_at": "timestamptz",
    "approval_request_comment": "text",
    "approval_decided_by": "varchar(200)",
    "approval_decided_at": "timestamptz",
    "approval_decision_comment": "text",
}


def upgrade() -> None:
    for name, ddl in COLUMNS.items():
        op.execute(f"ALTER TABLE registry.ai_models ADD COLUMN IF NOT EXISTS {name} {ddl}")
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_ai_models_approval "
        "ON registry.ai_models (workspace, approval)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS registry.ix_ai_models_approval")
    for name in COLUMNS:
        op.execute(f"ALTER TABLE registry.ai_models DROP COLUMN IF EXISTS {name}")
