"""Per-deployment health from heartbeats: the last probe, restarts, memory and CPU use."""

from modelyard_common.migration_env.changes import create_table, migration

revision: str = "0009"
down_revision: str | None = "0008"

upgrade, downgrade = migration(
    # One row per deployment, replaced by each heartbeat that lists it (no history: the fleet's
    # pulse would grow it by a row per deployment per interval).
    create_table(
        "deployer.deployment_health",
        """
        deployment_id uuid NOT NULL REFERENCES deployer.deployments (id) ON DELETE CASCADE,
        probe_ok boolean,
        probe_status integer,
        probe_error varchar(200),
        probed_at timestamptz,
        restarts integer,
        memory_mb double precision,
        memory_limit_mb double precision,
        cpu_percent double precision,
        sampled_at timestamptz,
        reported_at timestamptz NOT NULL,
        CONSTRAINT pk_deployment_health PRIMARY KEY (deployment_id)
        """,
    ),
)
