"""Usage per registry model per day, and the outbox its `gateway.usage.recorded` events leave by."""

from modelyard_common.infrastructure import OUTBOX
from modelyard_common.migration_env.changes import create_infrastructure, create_table, migration
from modelyard_common.migration_env.columns import USAGE_COUNTERS

revision: str = "0007"
down_revision: str | None = "0006"

upgrade, downgrade = migration(
    create_infrastructure("gateway", OUTBOX),
    create_table(
        "gateway.model_usage",
        f"""
        workspace varchar(200) NOT NULL,
        model_id uuid NOT NULL,
        day date NOT NULL,
        {USAGE_COUNTERS},
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_model_usage PRIMARY KEY (workspace, model_id, day)
        """,
    ),
)
