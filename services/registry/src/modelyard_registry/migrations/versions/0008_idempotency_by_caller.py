"""Idempotency records belong to their caller: another caller's key is a fresh request.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from alembic import op

from modelyard_common.http import idempotency_subject_ddl

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in idempotency_subject_ddl("registry"):
        op.execute(statement)


def downgrade() -> None:
    for statement in idempotency_subject_ddl("registry", upgrade=False):
        op.execute(statement)
