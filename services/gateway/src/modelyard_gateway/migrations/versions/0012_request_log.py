"""Request log: one row per client request, partitioned by UTC day; groups may log bodies."""

from modelyard_common.migration_env.changes import add_columns, migration, sql

revision: str = "0012"
down_revision: str | None = "0011"

# Partitioned by day on `at` (see requestlog/retention.py): the purge drops whole days. The
# partitions themselves are made by the gateway (each replica makes today's and the next days'
# before it writes into them), so a migration never has to know the calendar.
_TABLE = """
CREATE TABLE IF NOT EXISTS gateway.request_log (
    id uuid NOT NULL,
    at timestamptz NOT NULL,
    workspace varchar(200) NOT NULL,
    key_id uuid NOT NULL,
    endpoint varchar(32) NOT NULL,
    group_name varchar(200),
    registry_model_id uuid,
    instances text[] NOT NULL DEFAULT '{}',
    attempts smallint NOT NULL DEFAULT 0,
    status smallint NOT NULL,
    error_cause varchar(64),
    prompt_tokens integer,
    completion_tokens integer,
    total_tokens integer,
    ttfb_ms integer,
    duration_ms integer NOT NULL,
    stream boolean NOT NULL DEFAULT false,
    replica varchar(200) NOT NULL,
    request_body text,
    response_body text
) PARTITION BY RANGE (at)
"""

# Each index is declared on the parent, so every partition gets it (queries: a workspace's
# newest first, and that filtered by key, group or status).
_INDEXES = {
    "ix_gateway_request_log_workspace_at": "workspace, at DESC, id DESC",
    "ix_gateway_request_log_key": "workspace, key_id, at DESC",
    "ix_gateway_request_log_group": "workspace, group_name, at DESC",
    "ix_gateway_request_log_status": "workspace, status, at DESC",
}

upgrade, downgrade = migration(
    add_columns("gateway.model_groups", log_bodies="boolean NOT NULL DEFAULT false"),
    sql(_TABLE, "DROP TABLE IF EXISTS gateway.request_log"),
    *(
        sql(f"CREATE INDEX IF NOT EXISTS {name} ON gateway.request_log ({columns})")
        for name, columns in _INDEXES.items()
    ),
    # The purge's `at < cutoff` on the day straddling it: a BRIN index is a few pages per day,
    # and rows arrive in time order, which is what it needs.
    sql("CREATE INDEX IF NOT EXISTS ix_gateway_request_log_at ON gateway.request_log USING brin (at)"),
)
