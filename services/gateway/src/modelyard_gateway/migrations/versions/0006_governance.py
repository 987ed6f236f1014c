"""Governance: the gateway's projection of model approvals and workspace gates.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

from modelyard_common.governance import governance_ddl, governance_drop_ddl

revision: str = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    for statement in governance_ddl("gateway"):
        op.execute(statement)


def downgrade() -> None:
    for statement in governance_drop_ddl("gateway"):
        op.execute(statement)
