"""The heartbeat interval each device declares: its offline rule counts its own intervals."""

from modelyard_common.migration_env.changes import add_columns, migration

revision: str = "0010"
down_revision: str | None = "0009"

upgrade, downgrade = migration(
    # NULL until the device's first heartbeat that says it (older agents never do): the
    # deployer's `HEARTBEAT_INTERVAL_S` stands in.
    add_columns("deployer.devices", heartbeat_interval_s="double precision"),
)
