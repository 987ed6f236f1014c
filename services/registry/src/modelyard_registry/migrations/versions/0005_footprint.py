"""Footprint: deployments of each model and the spans in which they served a version."""

from modelyard_common.infrastructure import PROCESSED_EVENTS
from modelyard_common.migration_env.changes import (
    create_index,
    create_infrastructure,
    create_table,
    migration,
)

revision: str = "0005"
down_revision: str | None = "0004"

upgrade, downgrade = migration(
    create_infrastructure("registry", PROCESSED_EVENTS),
    create_table(
        "registry.deployment_footprint",
        """
        deployment_id uuid PRIMARY KEY,
        workspace varchar(100) NOT NULL,
        model_id uuid NOT NULL,
        device_id uuid NOT NULL,
        version_id uuid NOT NULL,
        running_version_id uuid,
        state varchar(32) NOT NULL,
        desired_state varchar(32) NOT NULL,
        since timestamptz NOT NULL
        """,
    ),
    create_index(
        "ix_deployment_footprint_model", "registry.deployment_footprint", "workspace, model_id"
    ),
    create_table(
        "registry.serving_intervals",
        """
        id uuid PRIMARY KEY,
        workspace varchar(100) NOT NULL,
        model_id uuid NOT NULL,
        deployment_id uuid NOT NULL,
        device_id uuid NOT NULL,
        version_id uuid NOT NULL,
        started_at timestamptz NOT NULL,
        ended_at timestamptz
        """,
    ),
    create_index(
        "ix_serving_intervals_model",
        "registry.serving_intervals",
        "workspace, model_id, started_at, id",
    ),
    create_index(
        "ix_serving_intervals_open", "registry.serving_intervals", "deployment_id, ended_at"
    ),
)
