"""`modelyard-deployer serve [--host] [--port]` and `modelyard-deployer migrate`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelyard_common.cli import service_main
from modelyard_common.db import upgrade_head
from modelyard_common.observability import configure_logging
from modelyard_deployer.settings import SCHEMA, DeployerSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(settings: DeployerSettings | None = None) -> None:
    """Apply the deployer's migrations to its schema."""
    settings = settings or DeployerSettings()
    upgrade_head(MIGRATIONS, settings.database_url, SCHEMA)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the deployer's command line."""
    settings = DeployerSettings()
    configure_logging("deployer", settings.log_level, json_logs=settings.log_json)
    service_main(
        prog="modelyard-deployer",
        app_path="modelyard_deployer.app:create_app",
        default_port=8002,
        migrate=lambda: migrate(settings),
        argv=argv,
        settings=DeployerSettings,
    )


if __name__ == "__main__":
    main()
