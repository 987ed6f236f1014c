"""Devices as separate machines: ingress port, agent epoch, endpoint sequence, provisioning."""

from modelyard_common.migration_env.changes import (
    add_columns,
    create_index,
    create_table,
    migration,
)

revision: str = "0003"
down_revision: str | None = "0002"

# IF [NOT] EXISTS, like 0002: safe on a database that already has part of this.
upgrade, downgrade = migration(
    add_columns(
        "deployer.devices",
        ingress_port="integer",
        agent_epoch="varchar(64)",
        retired_agent_epochs="jsonb NOT NULL DEFAULT '[]'::jsonb",
    ),
    add_columns(
        "deployer.deployments",
        endpoint_sequence="bigint NOT NULL DEFAULT 0",
        sequence_offset="bigint NOT NULL DEFAULT 0",
    ),
    create_table(
        "deployer.provisioning_tokens",
        """
        id uuid NOT NULL,
        workspace varchar(200) NOT NULL,
        name varchar(200) NOT NULL,
        token_hash varchar(64) NOT NULL,
        labels jsonb NOT NULL,
        expires_at timestamptz NOT NULL,
        max_uses integer NOT NULL,
        uses integer NOT NULL,
        created_by varchar(200) NOT NULL,
        revoked_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_provisioning_tokens PRIMARY KEY (id),
        CONSTRAINT uq_provisioning_tokens_token_hash UNIQUE (token_hash)
        """,
    ),
    create_index(
        "ix_deployer_provisioning_tokens_workspace", "deployer.provisioning_tokens", "workspace"
    ),
)
