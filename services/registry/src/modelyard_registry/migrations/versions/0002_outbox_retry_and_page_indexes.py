"""Outbox rows retried with backoff; keyset pagination indexes."""

from modelyard_common.migration_env.changes import create_index, migration, sql
from modelyard_common.outbox import outbox_retry_ddl

revision: str = "0002"
down_revision: str | None = "0001"

# IF [NOT] EXISTS: databases created by an early build of 0001 may already have some of these
# (and 0001 creates the outbox as it is now). 0001 creates the indexes too, and drops them.
upgrade, downgrade = migration(
    sql(outbox_retry_ddl("registry"), outbox_retry_ddl("registry", upgrade=False)),
    *(
        create_index(
            f"ix_{table}_page_{page}",
            f"registry.{table}",
            f"workspace, {column}, id",
            drop_on_downgrade=False,
        )
        for table in ("ai_models", "ai_systems")
        for page, column in (("name", "name"), ("created", "created_at"), ("updated", "updated_at"))
    ),
)
