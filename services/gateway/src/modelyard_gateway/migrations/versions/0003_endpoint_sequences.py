"""Endpoint events of one deployment apply in order: the last applied sequence per deployment."""

from modelyard_common.migration_env.changes import create_table, migration

revision: str = "0003"
down_revision: str | None = "0002"

upgrade, downgrade = migration(
    create_table(
        "gateway.endpoint_sequences",
        """
        deployment_id uuid NOT NULL,
        sequence bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_endpoint_sequences PRIMARY KEY (deployment_id)
        """,
    ),
)
