"""Governance: the deployer's projection of model approvals and workspace gates."""

from modelyard_common.governance import governance_ddl, governance_drop_ddl
from modelyard_common.migration_env.changes import add_columns, migration, sql

revision: str = "0005"
down_revision: str | None = "0004"

upgrade, downgrade = migration(
    sql(governance_ddl("deployer"), governance_drop_ddl("deployer")),
    # The warning a deployment carries while it runs only because the gate is `warn`.
    add_columns("deployer.deployments", policy_warning="text"),
)
