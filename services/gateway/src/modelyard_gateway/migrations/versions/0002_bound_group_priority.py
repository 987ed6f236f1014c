"""Bound groups order deployments by a device-label priority."""

from modelyard_common.migration_env.changes import add_columns, migration

revision: str = "0002"
down_revision: str | None = "0001"

# IF [NOT] EXISTS: databases created by an early build of 0001 may already have some of these.
upgrade, downgrade = migration(
    add_columns("gateway.model_groups", endpoint_priority="jsonb"),
    add_columns("gateway.model_instances", device_labels="jsonb"),
)
