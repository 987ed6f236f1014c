"""Initial gateway schema."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from modelyard_common.db import schema_metadata, timestamp_columns
from modelyard_common.infrastructure import IDEMPOTENCY_KEYS, PROCESSED_EVENTS
from modelyard_common.migration_env.changes import create_tables, migration
from modelyard_common.migration_env.columns import keyed_in_workspace, reference

revision: str = "0001"
down_revision: str | None = None

# The tables as this revision created them; keys, constraints and indexes named as the models
# name them (the naming convention of `schema_metadata`).
tables = schema_metadata("gateway")
sa.Table(
    "api_keys",
    tables,
    *keyed_in_workspace(),
    sa.Column("name", sa.String(length=200), nullable=False),
    sa.Column("key_hash", sa.String(length=64), nullable=False, unique=True),
    sa.Column("key_hint", sa.String(length=32), nullable=False),
    sa.Column("groups", postgresql.ARRAY(sa.String(length=200)), nullable=True),
    sa.Column("created_by", sa.String(length=200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)
sa.Table(
    "model_groups",
    tables,
    *keyed_in_workspace(),
    sa.Column("name", sa.String(length=200), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("registry_model_id", sa.Uuid(), nullable=True, index=True),
    sa.Column("revision", sa.Integer(), nullable=False),
    *timestamp_columns(),
    sa.UniqueConstraint("workspace", "name"),
)
sa.Table(
    "model_instances",
    tables,
    *keyed_in_workspace(),
    sa.Column("name", sa.String(length=200), nullable=False),
    sa.Column("kind", sa.String(length=10), nullable=False),
    sa.Column("host", sa.String(length=255), nullable=True),
    sa.Column("port", sa.Integer(), nullable=True),
    sa.Column("protocol", sa.String(length=5), nullable=False),
    sa.Column("path_prefix", sa.String(length=255), nullable=False),
    sa.Column("base_url", sa.String(length=2048), nullable=True),
    sa.Column("token_sealed", sa.Text(), nullable=True),
    sa.Column("proxy_url", sa.String(length=2048), nullable=True),
    sa.Column("proxy_username", sa.String(length=255), nullable=True),
    sa.Column("proxy_password_sealed", sa.Text(), nullable=True),
    sa.Column("extra_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column("upstream_model", sa.String(length=255), nullable=False),
    sa.Column("connect_timeout_s", sa.Float(), nullable=False),
    sa.Column("read_timeout_s", sa.Float(), nullable=False),
    sa.Column("max_concurrency", sa.Integer(), nullable=True),
    sa.Column("default_params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column("param_caps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column("health_path", sa.String(length=255), nullable=True),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False),
    sa.Column("deployment_id", sa.Uuid(), nullable=True, index=True),
    *timestamp_columns(),
    sa.UniqueConstraint("workspace", "name"),
)
sa.Table(
    "group_members",
    tables,
    reference("group_id", "gateway.model_groups", ondelete="CASCADE", primary_key=True),
    reference(
        "instance_id", "gateway.model_instances", ondelete="RESTRICT", primary_key=True, index=True
    ),
    sa.Column("position", sa.Integer(), nullable=False),
)
sa.Table(
    "instance_states",
    tables,
    reference("instance_id", "gateway.model_instances", ondelete="CASCADE", primary_key=True),
    sa.Column("cooldown_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("health_down", sa.Boolean(), nullable=False),
    sa.Column("check_failures", sa.Integer(), nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

upgrade, downgrade = migration(
    create_tables(tables, PROCESSED_EVENTS, IDEMPOTENCY_KEYS),
)
