"""Initial deployer schema."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from modelyard_common.db import schema_metadata, timestamp_columns
from modelyard_common.infrastructure import IDEMPOTENCY_KEYS, OUTBOX, PROCESSED_EVENTS
from modelyard_common.migration_env.changes import create_tables, migration
from modelyard_common.migration_env.columns import keyed_in_workspace, reference

revision: str = "0001"
down_revision: str | None = None

# The tables as this revision created them; keys, constraints and indexes named as the models
# name them (the naming convention of `schema_metadata`).
tables = schema_metadata("deployer")
sa.Table(
    "access_grants",
    tables,
    *keyed_in_workspace(),
    sa.Column("model_id", sa.Uuid(), nullable=False, index=True),
    sa.Column("subject_type", sa.String(length=10), nullable=False),
    sa.Column("subject", sa.String(length=200), nullable=False),
    sa.Column("level", sa.String(length=10), nullable=False),
    sa.Column("created_by", sa.String(length=200), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False),
    *timestamp_columns(),
    sa.UniqueConstraint("model_id", "subject_type", "subject"),
)
sa.Table(
    "devices",
    tables,
    *keyed_in_workspace(),
    sa.Column("name", sa.String(length=200), nullable=False),
    sa.Column("labels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column("token_hash", sa.String(length=64), nullable=True, unique=True),
    sa.Column("token_rotated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("agent_version", sa.String(length=100), nullable=True),
    sa.Column("capabilities", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column("advertise_host", sa.String(length=255), nullable=True),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revision", sa.Integer(), nullable=False),
    *timestamp_columns(),
)
sa.Table(
    "model_versions",
    tables,
    *keyed_in_workspace(),
    sa.Column("model_id", sa.Uuid(), nullable=False, index=True),
    sa.Column("number", sa.Integer(), nullable=False),
    sa.Column("title", sa.String(length=30), nullable=False),
    sa.Column("comment", sa.String(length=512), nullable=False),
    sa.Column("manifest", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column("sha256", sa.String(length=64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger(), nullable=False),
    sa.Column("uncompressed_bytes", sa.BigInteger(), nullable=False),
    sa.Column("file_count", sa.Integer(), nullable=False),
    sa.Column("storage_key", sa.String(length=255), nullable=False),
    sa.Column("created_by", sa.String(length=200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("model_id", "number"),
)
sa.Table(
    "registry_models",
    tables,
    *keyed_in_workspace(),
    sa.Column("name", sa.String(length=200), nullable=False),
    sa.Column("archived", sa.Boolean(), nullable=False),
    sa.Column("deleted", sa.Boolean(), nullable=False),
    sa.Column("source_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "deployments",
    tables,
    *keyed_in_workspace(),
    sa.Column("model_id", sa.Uuid(), nullable=False, index=True),
    reference("device_id", "deployer.devices", ondelete="RESTRICT", nullable=False, index=True),
    reference(
        "version_id", "deployer.model_versions", ondelete="RESTRICT", nullable=False, index=True
    ),
    reference(
        "previous_version_id",
        "deployer.model_versions",
        ondelete="RESTRICT",
        nullable=True,
        index=True,
    ),
    sa.Column("running_version_id", sa.Uuid(), nullable=True),
    sa.Column("desired_state", sa.String(length=20), nullable=False),
    sa.Column("state", sa.String(length=20), nullable=False),
    sa.Column("state_message", sa.Text(), nullable=False),
    sa.Column("generation", sa.Integer(), nullable=False),
    sa.Column("state_generation", sa.Integer(), nullable=False),
    sa.Column("last_sequence", sa.BigInteger(), nullable=False),
    sa.Column("host_port", sa.Integer(), nullable=True),
    sa.Column("base_url", sa.String(length=2048), nullable=True),
    sa.Column("endpoint_version_id", sa.Uuid(), nullable=True),
    sa.Column("created_by", sa.String(length=200), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False),
    *timestamp_columns(),
    sa.Index(
        "uq_deployments_device_model_live",
        "device_id",
        "model_id",
        unique=True,
        postgresql_where=sa.text("desired_state <> 'removed'"),
    ),
)
sa.Table(
    "deployment_events",
    tables,
    sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
    sa.Column("workspace", sa.String(length=200), nullable=False),
    reference(
        "deployment_id", "deployer.deployments", ondelete="CASCADE", nullable=False, index=True
    ),
    sa.Column("model_id", sa.Uuid(), nullable=False, index=True),
    sa.Column("device_id", sa.Uuid(), nullable=False),
    sa.Column("version_id", sa.Uuid(), nullable=True),
    sa.Column("source", sa.String(length=10), nullable=False),
    sa.Column("action", sa.String(length=20), nullable=True),
    sa.Column("state", sa.String(length=20), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("log_tail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column("generation", sa.Integer(), nullable=False),
    sa.Column("sequence", sa.BigInteger(), nullable=True),
    sa.Column("actor", sa.String(length=200), nullable=True),
    sa.Column("applied", sa.Boolean(), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index(
        "uq_deployment_events_sequence",
        "deployment_id",
        "sequence",
        unique=True,
        postgresql_where=sa.text("sequence IS NOT NULL"),
    ),
)

upgrade, downgrade = migration(
    create_tables(tables, OUTBOX, PROCESSED_EVENTS, IDEMPOTENCY_KEYS),
)
