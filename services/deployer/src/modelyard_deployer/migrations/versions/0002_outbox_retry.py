"""Outbox rows retried with backoff.

Revision ID: 0002
Revises: 0001
"""

from modelyard_common.infrastructure import execute_ddl
from modelyard_common.outbox import outbox_retry_ddl

revision: str = "0002"
down_revision: str | None = "0001"

# IF [NOT] EXISTS: 0001 creates the outbox as it is now, so on a database it built this does
# nothing; on one built before, it adds the column.


def upgrade() -> None:
    execute_ddl(outbox_retry_ddl("deployer"))


def downgrade() -> None:
    execute_ddl(outbox_retry_ddl("deployer", upgrade=False))
