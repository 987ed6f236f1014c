"""Devices as separate machines: ingress port, agent epoch, endpoint sequence, provisioning.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"

# IF [NOT] EXISTS, like 0002: safe on a database that already has part of this.


def upgrade() -> None:
    op.execute("ALTER TABLE deployer.devices ADD COLUMN IF NOT EXISTS ingress_port integer")
    op.execute("ALTER TABLE deployer.devices ADD COLUMN IF NOT EXISTS agent_epoch varchar(64)")
    op.execute(
        "ALTER TABLE deployer.devices "
        "ADD COLUMN IF NOT EXISTS retired_agent_epochs jsonb NOT NULL DEFAULT '[]'::jsonb"
    )
    op.execute(
        "ALTER TABLE deployer.deployments "
        "ADD COLUMN IF NOT EXISTS endpoint_sequence bigint NOT NULL DEFAULT 0"
    )
    op.execute(
        "ALTER TABLE deployer.deployments "
        "ADD COLUMN IF NOT EXISTS sequence_offset bigint NOT NULL DEFAULT 0"
    )
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS deployer.provisioning_tokens (
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
        )
        """
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_deployer_provisioning_tokens_workspace "
        "ON deployer.provisioning_tokens (workspace)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS deployer.provisioning_tokens")
    op.execute("ALTER TABLE deployer.deployments DROP COLUMN IF EXISTS sequence_offset")
    op.execute("ALTER TABLE deployer.deployments DROP COLUMN IF EXISTS endpoint_sequence")
    op.execute("ALTER TABLE deployer.devices DROP COLUMN IF EXISTS retired_agent_epochs")
    op.execute("ALTER TABLE deployer.devices DROP COLUMN IF EXISTS agent_epoch")
    op.execute("ALTER TABLE deployer.devices DROP COLUMN IF EXISTS ingress_port")
