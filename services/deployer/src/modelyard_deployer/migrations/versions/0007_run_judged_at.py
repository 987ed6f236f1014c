"""When the policy gate last judged a deployment's run: approval changes re-judge later ones.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    # Null for deployments judged before this column: none of them is in a window any more.
    op.execute(
        "ALTER TABLE deployer.deployments ADD COLUMN IF NOT EXISTS run_judged_at timestamptz"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_deployments_workspace_run_judged_at"
        " ON deployer.deployments (workspace, run_judged_at)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS deployer.ix_deployments_workspace_run_judged_at")
    op.execute("ALTER TABLE deployer.deployments DROP COLUMN IF EXISTS run_judged_at")
