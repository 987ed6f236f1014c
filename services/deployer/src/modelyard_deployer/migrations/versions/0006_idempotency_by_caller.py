"""Idempotency records belong to their caller: another caller's key is a fresh request."""

from modelyard_common.http import idempotency_subject_ddl
from modelyard_common.migration_env.changes import migration, sql

revision: str = "0006"
down_revision: str | None = "0005"

upgrade, downgrade = migration(
    sql(idempotency_subject_ddl("deployer"), idempotency_subject_ddl("deployer", upgrade=False)),
)
