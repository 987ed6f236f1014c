"""Outbox rows retried with backoff."""

from modelyard_common.migration_env.changes import migration, sql
from modelyard_common.outbox import outbox_retry_ddl

revision: str = "0002"
down_revision: str | None = "0001"

# IF [NOT] EXISTS: 0001 creates the outbox as it is now, so on a database it built this does
# nothing; on one built before, it adds the column.
upgrade, downgrade = migration(
    sql(outbox_retry_ddl("deployer"), outbox_retry_ddl("deployer", upgrade=False)),
)
