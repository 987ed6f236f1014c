"""Idempotency records belong to their caller: another caller's key is a fresh request.

Revision ID: 0008
Revises: 0007
"""

from modelyard_common.http import idempotency_subject_ddl
from modelyard_common.infrastructure import execute_ddl

revision: str = "0008"
down_revision: str | None = "0007"


def upgrade() -> None:
    execute_ddl(idempotency_subject_ddl("gateway"))


def downgrade() -> None:
    execute_ddl(idempotency_subject_ddl("gateway", upgrade=False))
