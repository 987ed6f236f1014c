"""When the policy gate last judged a deployment's run: approval changes re-judge later ones."""

from modelyard_common.migration_env.changes import add_columns, create_index, migration

revision: str = "0007"
down_revision: str | None = "0006"

upgrade, downgrade = migration(
    # Null for deployments judged before this column: none of them is in a window any more.
    add_columns("deployer.deployments", run_judged_at="timestamptz"),
    create_index(
        "ix_deployments_workspace_run_judged_at", "deployer.deployments", "workspace, run_judged_at"
    ),
)
