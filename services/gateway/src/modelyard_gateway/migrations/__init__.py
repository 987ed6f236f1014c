"""Alembic migrations of the gateway schema."""

from __future__ import annotations

from pathlib import Path

from modelyard_common.db import upgrade_head
from modelyard_gateway.settings import SCHEMA

MIGRATIONS = Path(__file__).parent  # its revisions are in versions/


def migrate(database_url: str) -> None:
    """Apply every gateway migration to the database (blocking; run it outside an event loop)."""
    upgrade_head(MIGRATIONS, database_url, SCHEMA)
