"""Alembic environment of the gateway schema."""

from __future__ import annotations

from modelyard_common.db import run_alembic_env
from modelyard_gateway.db import Base
from modelyard_gateway.settings import SCHEMA

run_alembic_env(Base.metadata, SCHEMA)
