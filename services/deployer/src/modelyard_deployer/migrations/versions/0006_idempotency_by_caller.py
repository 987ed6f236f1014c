"""Idempotency records belong to their caller: another caller's key is a fresh request.

Revision ID: 0006
Revises: 0005
"""

from modelyard_common.http import idempotency_subject_ddl
from modelyard_common.infrastructure import execute_ddl

revision: str = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    execute_ddl(idempotency_subject_ddl("deployer"))


def downgrade() -> None:
    execute_ddl(idempotency_subject_ddl("deployer", upgrade=False))
