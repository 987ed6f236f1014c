"""Limits and budgets: per key (and expiry), a ceiling per workspace, shared window counters."""

from modelyard_common.migration_env.changes import (
    add_columns,
    create_index,
    create_table,
    migration,
)

revision: str = "0010"
down_revision: str | None = "0009"

_LIMITS = """
    requests_per_minute integer CHECK (requests_per_minute > 0),
    tokens_per_minute bigint CHECK (tokens_per_minute > 0),
    tokens_per_day bigint CHECK (tokens_per_day > 0),
    tokens_per_month bigint CHECK (tokens_per_month > 0)
"""

upgrade, downgrade = migration(
    add_columns(
        "gateway.api_keys",
        expires_at="timestamptz",
        requests_per_minute="integer CHECK (requests_per_minute > 0)",
        tokens_per_minute="bigint CHECK (tokens_per_minute > 0)",
        tokens_per_day="bigint CHECK (tokens_per_day > 0)",
        tokens_per_month="bigint CHECK (tokens_per_month > 0)",
        revision="integer NOT NULL DEFAULT 1",
    ),
    create_table(
        "gateway.workspace_limits",
        f"""
        workspace varchar(200) PRIMARY KEY,
        {_LIMITS},
        revision integer NOT NULL DEFAULT 1,
        updated_by varchar(200) NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
        """,
    ),
    # One row per (scope, measure, window): `used` is what every replica took together;
    # `last_grant` is what the last lease handed out (an UPDATE cannot return the old value).
    create_table(
        "gateway.limit_counters",
        """
        scope varchar(250) NOT NULL,
        measure varchar(32) NOT NULL,
        window_start bigint NOT NULL,
        window_end bigint NOT NULL,
        used bigint NOT NULL DEFAULT 0,
        last_grant bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, measure, window_start)
        """,
    ),
    create_index("ix_gateway_limit_counters_window_end", "gateway.limit_counters", "window_end"),
)
