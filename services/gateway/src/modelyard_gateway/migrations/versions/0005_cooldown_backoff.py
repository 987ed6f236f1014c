"""Shared cooldown backoff: the level a repeated cooldown has grown to, a Retry-After floor, and
the failure code that started the cooldown (a good probe ends only reachability cooldowns early).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE gateway.instance_states"
        " ADD COLUMN IF NOT EXISTS cooldown_level integer NOT NULL DEFAULT 0"
    )
    op.execute(
        "ALTER TABLE gateway.instance_states ADD COLUMN IF NOT EXISTS retry_until timestamptz"
    )
    op.execute(
        "ALTER TABLE gateway.instance_states"
        " ADD COLUMN IF NOT EXISTS cooldown_cause varchar(40) NOT NULL DEFAULT ''"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE gateway.instance_states DROP COLUMN IF EXISTS cooldown_cause")
    op.execute("ALTER TABLE gateway.instance_states DROP COLUMN IF EXISTS retry_until")
    op.execute("ALTER TABLE gateway.instance_states DROP COLUMN IF EXISTS cooldown_level")
