"""Model usage: gateway requests, errors and tokens per model per UTC day."""

from modelyard_common.migration_env.changes import create_table, migration
from modelyard_common.migration_env.columns import USAGE_COUNTERS

revision: str = "0007"
down_revision: str | None = "0006"

upgrade, downgrade = migration(
    create_table(
        "registry.model_usage",
        f"""
        workspace varchar(100) NOT NULL,
        model_id uuid NOT NULL,
        day date NOT NULL,
        {USAGE_COUNTERS},
        CONSTRAINT pk_model_usage PRIMARY KEY (workspace, model_id, day)
        """,
    ),
)
