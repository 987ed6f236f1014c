"""The Alembic environment every service's migrations run in: `env.py` and the revision template.

Alembic looks for both in its `script_location`; each service's own `migrations/versions/` is
the `version_locations` (see `modelyard_common.db.alembic_config`).
"""
