"""The Alembic environment every service's migrations run in: `env.py`, the revision template,
and `changes`, the schema changes a revision declares once for both its upgrade and downgrade.

Alembic looks for `env.py` and the template in its `script_location`; each service's own
`migrations/versions/` is the `version_locations` (see `modelyard_common.db.alembic_config`).
"""
