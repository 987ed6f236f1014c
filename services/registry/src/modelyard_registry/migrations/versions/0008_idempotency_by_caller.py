"""Idempotency records belong to their caller: another caller's key is a fresh request."""

from modelyard_common.http import idempotency_subject_ddl
from modelyard_common.migration_env.changes import migration, sql

revision: str = "0008"
down_revision: str | None = "0007"

upgrade, downgrade = migration(
    sql(idempotency_subject_ddl("registry"), idempotency_subject_ddl("registry", upgrade=False)),
)
