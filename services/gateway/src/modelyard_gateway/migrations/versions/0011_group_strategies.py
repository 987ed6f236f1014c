"""Routing strategies per model group, and the audit trail of group changes."""

from modelyard_common.migration_env.changes import (
    add_columns,
    create_index,
    create_table,
    migration,
)

revision: str = "0011"
down_revision: str | None = "0010"

upgrade, downgrade = migration(
    # {"type": "ordered" | "weighted" | "least_busy" | "latency", "weights": {id: n},
    #  "default_weight": n, "sticky": {"by": "key" | "header", "header": name} | null}
    add_columns(
        "gateway.model_groups",
        strategy="""jsonb NOT NULL DEFAULT '{"type": "ordered"}'::jsonb
            CHECK (strategy->>'type' IN ('ordered', 'weighted', 'least_busy', 'latency'))""",
    ),
    create_table(
        "gateway.history",
        """
        id uuid PRIMARY KEY,
        workspace varchar(200) NOT NULL,
        resource_type varchar(32) NOT NULL,
        resource_id uuid NOT NULL,
        action varchar(32) NOT NULL,
        actor varchar(200) NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        changes jsonb NOT NULL DEFAULT '{}'::jsonb
        """,
    ),
    create_index("ix_gateway_history_resource", "gateway.history", "workspace, resource_id, at"),
)
