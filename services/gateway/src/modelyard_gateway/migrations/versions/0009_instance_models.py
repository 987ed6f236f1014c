"""Governance per instance: the registry model a deployment's instance serves, device ingresses.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"


def upgrade() -> None:
    op.execute("ALTER TABLE gateway.model_instances ADD COLUMN IF NOT EXISTS registry_model_id uuid")
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_gateway_model_instances_registry_model_id"
        " ON gateway.model_instances (registry_model_id)"
    )
    # Instances made from endpoints so far joined the groups bound to their model: that is it.
    op.execute(
        """
        UPDATE gateway.model_instances AS i SET registry_model_id = g.registry_model_id
        FROM gateway.group_members AS m JOIN gateway.model_groups AS g ON g.id = m.group_id
        WHERE m.instance_id = i.id AND i.deployment_id IS NOT NULL
          AND i.registry_model_id IS NULL AND g.registry_model_id IS NOT NULL
        """
    )
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS gateway.device_endpoints (
            deployment_id uuid PRIMARY KEY,
            workspace varchar(200),
            model_id uuid NOT NULL,
            host varchar(255) NOT NULL,
            port integer NOT NULL,
            path varchar(2048) NOT NULL DEFAULT '',
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_gateway_device_endpoints_host"
        " ON gateway.device_endpoints (host)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS gateway.device_endpoints")
    op.execute("ALTER TABLE gateway.model_instances DROP COLUMN IF EXISTS registry_model_id")
