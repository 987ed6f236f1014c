"""Registry tables, all in the `registry` schema and all scoped by workspace."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    column,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelyard_common.db import UsageCountersMixin, new_id, schema_metadata, utcnow
from modelyard_common.history import HistoryColumns
from modelyard_common.http import make_etag
from modelyard_common.infrastructure import infrastructure_models

SCHEMA = "registry"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


class Audited:
    """Who changed a row and when, plus the revision behind its ETag."""

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_by: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    @property
    def etag(self) -> str:
        """The ETag of the row's revision, for If-Match."""
        return make_etag(self.revision)


def _search_vector(*columns: str) -> Mapped[Any]:
    """Return the full-text `search` column over `columns` (computed and stored by PostgreSQL)."""
    text = " || ' ' || ".join(f"coalesce({column}, '')" for column in columns)
    return mapped_column(
        TSVECTOR, Computed(f"to_tsvector('english', {text})", persisted=True), deferred=True
    )


_PAGE_COLUMNS = {"name": "name", "created": "created_at", "updated": "updated_at"}


def _inventory_indexes(table: str) -> tuple[Index, ...]:
    """Return the indexes of an inventory table: unique name, search, tags and keyset pages."""
    return (
        Index(f"uq_{table}_workspace_name", "workspace", func.lower(column("name")), unique=True),
        Index(f"ix_{table}_search", "search", postgresql_using="gin"),
        Index(f"ix_{table}_tags", "tags", postgresql_using="gin"),
        # Keyset pagination walks these: (workspace, sort column, id).
        *(
            Index(f"ix_{table}_page_{page}", "workspace", sort_column, "id")
            for page, sort_column in _PAGE_COLUMNS.items()
        ),
    )


class Inventoried(Audited):
    """What AI models and AI systems both are: named, described, tagged rows one may archive."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list, server_default="{}")
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def archived(self) -> bool:
        """Whether the row is archived (soft-deleted)."""
        return self.archived_at is not None


class AIModel(Inventoried, Base):
    __tablename__ = "ai_models"

    learning_type: Mapped[str] = mapped_column(String(32))
    functionality: Mapped[str] = mapped_column(String(200), default="", server_default="")
    foundations: Mapped[str] = mapped_column(String(200), default="", server_default="")
    provider: Mapped[str] = mapped_column(String(200), default="", server_default="")
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    approval: Mapped[str] = mapped_column(String(16), default="draft", server_default="draft")
    approval_conditions: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    approval_requested_by: Mapped[str | None] = mapped_column(String(200))
    approval_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approval_request_comment: Mapped[str | None] = mapped_column(Text)
    approval_decided_by: Mapped[str | None] = mapped_column(String(200))
    approval_decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approval_decision_comment: Mapped[str | None] = mapped_column(Text)
    search: Mapped[Any] = _search_vector("name", "description")

    __table_args__ = (
        *_inventory_indexes("ai_models"),
        Index("ix_ai_models_approval", "workspace", "approval"),
    )


class AISystem(Inventoried, Base):
    __tablename__ = "ai_systems"

    purpose: Mapped[str] = mapped_column(Text, default="", server_default="")
    owner: Mapped[str] = mapped_column(String(200), default="", server_default="")
    status: Mapped[str] = mapped_column(String(16))
    risk_level: Mapped[str] = mapped_column(String(16))
    ai_act_role: Mapped[str] = mapped_column(String(16))
    risk_justification: Mapped[str] = mapped_column(Text, default="", server_default="")
    search: Mapped[Any] = _search_vector("name", "description", "purpose")

    __table_args__ = _inventory_indexes("ai_systems")


class SystemModelLink(Audited, Base):
    """How one AI system uses one AI model."""

    __tablename__ = "system_models"

    system_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ai_systems.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ai_models.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    workspace: Mapped[str] = mapped_column(String(100))
    description_of_use: Mapped[str] = mapped_column(Text)


class Evidence(Audited, Base):
    """A document that proves an obligation is met: a URL, or a file the registry keeps."""

    __tablename__ = "evidence"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2000))
    owner: Mapped[str] = mapped_column(String(200), default="", server_default="")
    expires_on: Mapped[date | None] = mapped_column(Date)
    system_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ai_systems.id", ondelete="SET NULL")
    )
    model_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ai_models.id", ondelete="SET NULL")
    )
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(200))
    # Kept in the database, so every replica serves it and backups hold it (size-limited).
    file_content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)

    @property
    def expired(self) -> bool:
        """Whether the item's expiry day has passed."""
        return self.expires_on is not None and self.expires_on < date.today()

    @property
    def has_file(self) -> bool:
        """Whether a file is attached (a link-only item has none)."""
        return self.file_sha256 is not None

    __table_args__ = (
        Index("ix_evidence_page_created", "workspace", "created_at", "id"),
        Index("ix_evidence_expires", "workspace", "expires_on", "id"),
    )


class SystemObligation(Base):
    """The status of one AI Act obligation of one system (derived items start `open`)."""

    __tablename__ = "system_obligations"

    system_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ai_systems.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(200), default="", server_default="")
    evidence_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("evidence.id", ondelete="SET NULL")
    )
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class HistoryEntry(HistoryColumns, Base):
    """One change to one resource: who, when, what, old -> new."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_resource", "workspace", "resource_id", "at"),)

    workspace: Mapped[str] = mapped_column(String(100))


class DeploymentFootprint(Base):
    """The latest known state of one deployment of a model (from deployer events)."""

    __tablename__ = "deployment_footprint"

    deployment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workspace: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[uuid.UUID] = mapped_column()
    device_id: Mapped[uuid.UUID] = mapped_column()
    version_id: Mapped[uuid.UUID] = mapped_column()
    running_version_id: Mapped[uuid.UUID | None] = mapped_column()
    state: Mapped[str] = mapped_column(String(32))
    desired_state: Mapped[str] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_deployment_footprint_model", "workspace", "model_id"),)


class ServingInterval(Base):
    """A span of time in which one deployment served one version of a model."""

    __tablename__ = "serving_intervals"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[uuid.UUID] = mapped_column()
    deployment_id: Mapped[uuid.UUID] = mapped_column()
    device_id: Mapped[uuid.UUID] = mapped_column()
    version_id: Mapped[uuid.UUID] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_serving_intervals_model", "workspace", "model_id", "started_at", "id"),
        Index("ix_serving_intervals_open", "deployment_id", "ended_at"),
    )


class WorkspacePolicy(Base):
    """A workspace's policy gate (enforce, warn, off) and who set it; absent means the default."""

    __tablename__ = "workspace_policies"

    workspace: Mapped[str] = mapped_column(String(200), primary_key=True)
    gate: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelUsageDay(UsageCountersMixin, Base):
    """Gateway traffic of one model on one UTC day, added up from `gateway.usage.recorded`."""

    __tablename__ = "model_usage"

    workspace: Mapped[str] = mapped_column(String(100), primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)


OutboxEvent, ProcessedEvent, IdempotencyRecord = infrastructure_models(Base)
