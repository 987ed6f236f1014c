"""Governance: the deployer's projection of model approvals and workspace gates.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from modelyard_common.governance import governance_ddl, governance_drop_ddl

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    for statement in governance_ddl("deployer"):
        op.execute(statement)
    # The warning a deployment carries while it runs only because the gate is `warn`.
    op.execute("ALTER TABLE deployer.deployments ADD COLUMN IF NOT EXISTS policy_warning text")


def downgrade() -> None:
    op.execute("ALTER TABLE deployer.deployments DROP COLUMN IF EXISTS policy_warning")
    for statement in governance_drop_ddl("deployer"):
        op.execute(statement)
