from modelyard_common.db import run_alembic_env
from modelyard_registry.db import SCHEMA, Base

run_alembic_env(Base.metadata, SCHEMA)
