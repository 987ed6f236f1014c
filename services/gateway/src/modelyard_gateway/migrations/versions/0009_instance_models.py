"""Governance per instance: the registry model a deployment's instance serves, device ingresses."""

from modelyard_common.migration_env.changes import (
    add_columns,
    create_index,
    create_table,
    migration,
    sql,
)

revision: str = "0009"
down_revision: str | None = "0008"

upgrade, downgrade = migration(
    add_columns("gateway.model_instances", registry_model_id="uuid"),
    create_index(
        "ix_gateway_model_instances_registry_model_id",
        "gateway.model_instances",
        "registry_model_id",
    ),
    # Instances made from endpoints so far joined the groups bound to their model: that is it.
    sql(
        """
        UPDATE gateway.model_instances AS i SET registry_model_id = g.registry_model_id
        FROM gateway.group_members AS m JOIN gateway.model_groups AS g ON g.id = m.group_id
        WHERE m.instance_id = i.id AND i.deployment_id IS NOT NULL
          AND i.registry_model_id IS NULL AND g.registry_model_id IS NOT NULL
        """
    ),
    create_table(
        "gateway.device_endpoints",
        """
        deployment_id uuid PRIMARY KEY,
        workspace varchar(200),
        model_id uuid NOT NULL,
        host varchar(255) NOT NULL,
        port integer NOT NULL,
        path varchar(2048) NOT NULL DEFAULT '',
        updated_at timestamptz NOT NULL DEFAULT now()
        """,
    ),
    create_index("ix_gateway_device_endpoints_host", "gateway.device_endpoints", "host"),
)
