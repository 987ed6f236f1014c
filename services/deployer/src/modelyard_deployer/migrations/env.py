"""Alembic environment of the deployer schema."""

from __future__ import annotations

from modelyard_common.db import run_alembic_env
from modelyard_deployer.db import Base
from modelyard_deployer.settings import SCHEMA

run_alembic_env(Base.metadata, SCHEMA)
