"""Governance: each workspace's policy gate (enforce, warn, off) and who set it."""

from modelyard_common.migration_env.changes import create_table, migration

revision: str = "0006"
down_revision: str | None = "0005"

upgrade, downgrade = migration(
    create_table(
        "registry.workspace_policies",
        """
        workspace varchar(200) PRIMARY KEY,
        gate varchar(10) NOT NULL CHECK (gate IN ('enforce', 'warn', 'off')),
        comment text NOT NULL DEFAULT '',
        updated_by varchar(200) NOT NULL,
        updated_at timestamptz NOT NULL
        """,
    ),
)
