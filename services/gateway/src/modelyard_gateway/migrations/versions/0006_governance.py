"""Governance: the gateway's projection of model approvals and workspace gates."""

from modelyard_common.governance import governance_ddl, governance_drop_ddl
from modelyard_common.migration_env.changes import migration, sql

revision: str = "0006"
down_revision: str | None = "0005"

upgrade, downgrade = migration(
    sql(governance_ddl("gateway"), governance_drop_ddl("gateway")),
)
