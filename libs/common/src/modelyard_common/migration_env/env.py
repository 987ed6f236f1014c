"""Alembic environment of one service's schema (named, with its tables, by the Config)."""

from modelyard_common.db import run_alembic_env

run_alembic_env()
