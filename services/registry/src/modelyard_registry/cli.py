"""`modelyard-registry serve|migrate`."""

from __future__ import annotations

from pathlib import Path

from modelyard_common.cli import service_main
from modelyard_common.db import upgrade_head
from modelyard_registry.db import SCHEMA
from modelyard_registry.settings import RegistrySettings

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(database_url: str | None = None) -> None:
    """Apply the registry's migrations to its schema."""
    upgrade_head(MIGRATIONS, database_url or RegistrySettings().database_url, SCHEMA)


def main() -> None:
    service_main(
        prog="modelyard-registry",
        app_path="modelyard_registry.app:create_app",
        default_port=8001,
        migrate=migrate,
        settings=RegistrySettings,
    )
