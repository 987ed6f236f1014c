"""Initial registry schema."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from modelyard_common.db import schema_metadata
from modelyard_common.infrastructure import IDEMPOTENCY_KEYS, OUTBOX
from modelyard_common.migration_env.changes import create_tables, migration
from modelyard_common.migration_env.columns import reference

revision: str = "0001"
down_revision: str | None = None

# The tables as this revision created them; keys, constraints and indexes named as the models
# name them (the naming convention of `schema_metadata`).
tables = schema_metadata("registry")


def audit_columns() -> list[sa.Column[Any]]:
    """Return who created and last changed a row and when, and its revision (optimistic lock)."""
    stamps = [
        column
        for action in ("created", "updated")
        for column in (
            sa.Column(
                f"{action}_at",
                sa.DateTime(timezone=True),
                server_default=sa.text("now()"),
                nullable=False,
            ),
            sa.Column(f"{action}_by", sa.String(length=200), nullable=False),
        )
    ]
    return [*stamps, sa.Column("revision", sa.Integer(), server_default="1", nullable=False)]


def inventory_table(name: str, *columns: sa.Column[Any], searched: tuple[str, ...]) -> None:
    """Declare an inventory table (AI models, AI systems): a workspace's named, tagged records.

    Both are paged by name, creation or update, searched in full text over `searched`, and hold
    one record of a name (in any case) per workspace.
    """
    search = " || ' ' || ".join(f"coalesce({column}, '')" for column in searched)
    sa.Table(
        name,
        tables,
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("workspace", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        *columns,
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed(f"to_tsvector('english', {search})", persisted=True),
            nullable=False,
        ),
        *audit_columns(),
        *(
            sa.Index(f"ix_{name}_page_{page}", "workspace", column, "id")
            for page, column in (
                ("created", "created_at"),
                ("name", "name"),
                ("updated", "updated_at"),
            )
        ),
        sa.Index(f"ix_{name}_search", "search", postgresql_using="gin"),
        sa.Index(f"ix_{name}_tags", "tags", postgresql_using="gin"),
        sa.Index(f"uq_{name}_workspace_name", "workspace", sa.text("lower(name)"), unique=True),
    )


inventory_table(
    "ai_models",
    sa.Column("learning_type", sa.String(length=32), nullable=False),
    sa.Column("functionality", sa.String(length=200), server_default="", nullable=False),
    sa.Column("foundations", sa.String(length=200), server_default="", nullable=False),
    sa.Column("provider", sa.String(length=200), server_default="", nullable=False),
    sa.Column("tags", postgresql.ARRAY(sa.String(length=64)), server_default="{}", nullable=False),
    sa.Column(
        "properties", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
    ),
    searched=("name", "description"),
)
inventory_table(
    "ai_systems",
    sa.Column("purpose", sa.Text(), server_default="", nullable=False),
    sa.Column("owner", sa.String(length=200), server_default="", nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("risk_level", sa.String(length=16), nullable=False),
    sa.Column("ai_act_role", sa.String(length=16), nullable=False),
    sa.Column("tags", postgresql.ARRAY(sa.String(length=64)), server_default="{}", nullable=False),
    searched=("name", "description", "purpose"),
)
sa.Table(
    "history",
    tables,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("workspace", sa.String(length=100), nullable=False),
    sa.Column("resource_type", sa.String(length=32), nullable=False),
    sa.Column("resource_id", sa.Uuid(), nullable=False),
    sa.Column("action", sa.String(length=32), nullable=False),
    sa.Column("actor", sa.String(length=200), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Index("ix_history_resource", "workspace", "resource_id", "at"),
)
sa.Table(
    "system_models",
    tables,
    reference("system_id", "registry.ai_systems", ondelete="CASCADE", primary_key=True),
    reference("model_id", "registry.ai_models", ondelete="RESTRICT", primary_key=True, index=True),
    sa.Column("workspace", sa.String(length=100), nullable=False),
    sa.Column("description_of_use", sa.Text(), nullable=False),
    *audit_columns(),
)

upgrade, downgrade = migration(
    create_tables(tables, OUTBOX, IDEMPOTENCY_KEYS),
)
