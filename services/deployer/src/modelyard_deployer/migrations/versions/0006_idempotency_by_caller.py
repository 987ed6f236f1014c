"""Idempotency records belong to their caller: another caller's key is a fresh request.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

from modelyard_common.http import idempotency_subject_ddl

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in idempotency_subject_ddl("deployer"):
        op.execute(statement)


def downgrade() -> None:
    for statement in idempotency_subject_ddl("deployer", upgrade=False):
        op.execute(statement)
