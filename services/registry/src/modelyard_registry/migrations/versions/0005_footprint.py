"""Footprint: deployments of each model and the spans in which they served a version.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from modelyard_common.infrastructure import (
    PROCESSED_EVENTS,
    execute_ddl,
    infrastructure_ddl,
    infrastructure_drop_ddl,
)

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    execute_ddl(infrastructure_ddl("registry", PROCESSED_EVENTS))
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS registry.deployment_footprint (
            deployment_id uuid PRIMARY KEY,
            workspace varchar(100) NOT NULL,
            model_id uuid NOT NULL,
            device_id uuid NOT NULL,
            version_id uuid NOT NULL,
            running_version_id uuid,
            state varchar(32) NOT NULL,
            desired_state varchar(32) NOT NULL,
            since timestamptz NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_deployment_footprint_model "
        "ON registry.deployment_footprint (workspace, model_id)"
    )
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS registry.serving_intervals (
            id uuid PRIMARY KEY,
            workspace varchar(100) NOT NULL,
            model_id uuid NOT NULL,
            deployment_id uuid NOT NULL,
            device_id uuid NOT NULL,
            version_id uuid NOT NULL,
            started_at timestamptz NOT NULL,
            ended_at timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_serving_intervals_model "
        "ON registry.serving_intervals (workspace, model_id, started_at, id)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_serving_intervals_open "
        "ON registry.serving_intervals (deployment_id, ended_at)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS registry.serving_intervals")
    op.execute("DROP TABLE IF EXISTS registry.deployment_footprint")
    execute_ddl(infrastructure_drop_ddl("registry", PROCESSED_EVENTS))
