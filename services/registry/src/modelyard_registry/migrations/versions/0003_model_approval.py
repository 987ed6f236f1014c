"""Model approval: state, conditions, who requested and who decided."""

from modelyard_common.migration_env.changes import add_columns, create_index, migration

revision: str = "0003"
down_revision: str | None = "0002"

upgrade, downgrade = migration(
    add_columns(
        "registry.ai_models",
        approval="varchar(16) NOT NULL DEFAULT 'draft'",
        approval_conditions="jsonb",
        approval_requested_by="varchar(200)",
        approval_requested_at="timestamptz",
        approval_request_comment="text",
        approval_decided_by="varchar(200)",
        approval_decided_at="timestamptz",
        approval_decision_comment="text",
    ),
    create_index("ix_ai_models_approval", "registry.ai_models", "workspace, approval"),
)
