"""Shared cooldown backoff: the level a repeated cooldown has grown to, a Retry-After floor, and
the failure code that started the cooldown (a good probe ends only reachability cooldowns early).
"""

from modelyard_common.migration_env.changes import add_columns, migration

revision: str = "0005"
down_revision: str | None = "0004"

upgrade, downgrade = migration(
    add_columns(
        "gateway.instance_states",
        cooldown_level="integer NOT NULL DEFAULT 0",
        retry_until="timestamptz",
        cooldown_cause="varchar(40) NOT NULL DEFAULT ''",
    ),
)
