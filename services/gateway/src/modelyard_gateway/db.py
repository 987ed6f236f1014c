"""Tables of the gateway's own Postgres schema."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelyard_common.db import (
    NamedInWorkspace,
    TimestampMixin,
    UsageCountersMixin,
    schema_metadata,
    utcnow,
)
from modelyard_common.governance.tables import projection_models
from modelyard_common.history import HistoryColumns
from modelyard_common.infrastructure import infrastructure_models
from modelyard_gateway.settings import SCHEMA

CONFIG_CHANNEL = "gateway_config"
STATE_CHANNEL = "gateway_state"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


class ModelInstance(NamedInWorkspace, TimestampMixin, Base):
    """One backend: a local OpenAI-compatible server or a cloud API."""

    __tablename__ = "model_instances"
    __table_args__ = (UniqueConstraint("workspace", "name"),)

    kind: Mapped[str] = mapped_column(String(10))
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    protocol: Mapped[str] = mapped_column(String(5), default="http")
    path_prefix: Mapped[str] = mapped_column(String(255), default="")
    base_url: Mapped[str | None] = mapped_column(String(2048))
    token_sealed: Mapped[str | None] = mapped_column(Text)
    proxy_url: Mapped[str | None] = mapped_column(String(2048))
    proxy_username: Mapped[str | None] = mapped_column(String(255))
    proxy_password_sealed: Mapped[str | None] = mapped_column(Text)
    extra_headers: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    # Headers carrying credentials (`api-key`, `x-api-key`, ...): one sealed JSON map, never shown.
    secret_headers_sealed: Mapped[str | None] = mapped_column(Text)
    secret_header_names: Mapped[list[str]] = mapped_column(JSONB, default=list)
    upstream_model: Mapped[str] = mapped_column(String(255))
    connect_timeout_s: Mapped[float] = mapped_column(Float, default=5.0)
    read_timeout_s: Mapped[float] = mapped_column(Float, default=120.0)
    max_concurrency: Mapped[int | None] = mapped_column(Integer)
    default_params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    param_caps: Mapped[dict[str, float]] = mapped_column(JSONB, default=dict)
    health_path: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # Set on instances the gateway created from a deployer endpoint event (bound groups).
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    device_labels: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    # The registry model such an instance serves: set from the endpoint event, never by the API,
    # so the instance is judged as that model in whatever group lists it.
    registry_model_id: Mapped[uuid.UUID | None] = mapped_column(index=True)


class DeviceEndpoint(Base):
    """A running deployment's address on a device's ingress (from `endpoint_ready` events).

    Any instance pointing at a device ingress serves what runs there: the routing catalog judges
    hand-made instances at these addresses as the models deployed behind them.
    """

    __tablename__ = "device_endpoints"

    deployment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workspace: Mapped[str | None] = mapped_column(String(200))
    model_id: Mapped[uuid.UUID] = mapped_column()
    host: Mapped[str] = mapped_column(String(255), index=True)
    port: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(2048), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelGroup(NamedInWorkspace, TimestampMixin, Base):
    """What clients name in `model`: an ordered list of instances."""

    __tablename__ = "model_groups"
    __table_args__ = (UniqueConstraint("workspace", "name"),)

    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    registry_model_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # {"label": L, "values": [v1, v2, ...]}: deployment instances on devices whose label L is v1
    # come first, then v2, ...; the rest after them, each tier ordered by device id.
    endpoint_priority: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # How each request orders the instances before failover (`groups.schemas.GroupStrategy`):
    # {"type": ..., "weights": {instance id: n}, "default_weight": n, "sticky": {...}}.
    strategy: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=lambda: {"type": "ordered"}, server_default='{"type": "ordered"}'
    )
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # Whether the request log keeps prompts and answers of this group (capped); off by default.
    log_bodies: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class GroupMember(Base):
    """The place of one instance in one group's failover order."""

    __tablename__ = "group_members"

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.model_groups.id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.model_instances.id", ondelete="RESTRICT"),
        primary_key=True,
        index=True,
    )
    position: Mapped[int] = mapped_column(Integer)


class HistoryEntry(HistoryColumns, Base):
    """One change to one admin resource: who, when, what, each field's old and new value."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_gateway_history_resource", "workspace", "resource_id", "at"),)

    workspace: Mapped[str] = mapped_column(String(200))


class LimitColumns:
    """Requests and tokens per minute, token budgets per UTC day and month (null: no limit)."""

    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(BigInteger)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger)
    tokens_per_month: Mapped[int | None] = mapped_column(BigInteger)


class WorkspaceLimits(LimitColumns, Base):
    """The ceiling every key of a workspace shares (a key's own limits apply as well)."""

    __tablename__ = "workspace_limits"

    workspace: Mapped[str] = mapped_column(String(200), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(NamedInWorkspace, LimitColumns, Base):
    """A client API key; only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(32))
    groups: Mapped[list[str] | None] = mapped_column(ARRAY(String(200)))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revision: Mapped[int] = mapped_column(Integer, default=1)


class EndpointSequence(Base):
    """The last endpoint event applied for a deployment (older ones arriving late are skipped)."""

    __tablename__ = "endpoint_sequences"

    deployment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


ModelApproval, WorkspacePolicy = projection_models(Base)
infrastructure = infrastructure_models(Base)
OutboxEvent, ProcessedEvent, IdempotencyRecord = infrastructure


class ModelUsage(UsageCountersMixin, Base):
    """Requests, errors and tokens of one registry model's bound groups on one UTC day."""

    __tablename__ = "model_usage"

    workspace: Mapped[str] = mapped_column(String(200), primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RequestLogEntry(Base):
    """One client request to a POST endpoint, as the request log keeps it (partitioned by day).

    The table has no primary key constraint (a partitioned table's would have to include `at`
    and cost every insert one more index); (`at`, `id`) is unique by construction.
    """

    __tablename__ = "request_log"

    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workspace: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[uuid.UUID] = mapped_column()
    endpoint: Mapped[str] = mapped_column(String(32))
    group_name: Mapped[str | None] = mapped_column(String(200))
    registry_model_id: Mapped[uuid.UUID | None] = mapped_column()
    instances: Mapped[list[str]] = mapped_column(ARRAY(Text))
    attempts: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[int] = mapped_column(SmallInteger)
    error_cause: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    ttfb_ms: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    stream: Mapped[bool] = mapped_column(Boolean)
    replica: Mapped[str] = mapped_column(String(200))
    request_body: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)


class InstanceState(Base):
    """Health and cooldown of one instance, shared by every gateway replica."""

    __tablename__ = "instance_states"

    instance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.model_instances.id", ondelete="CASCADE"), primary_key=True
    )
    cooldown_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    health_down: Mapped[bool] = mapped_column(Boolean, default=False)
    check_failures: Mapped[int] = mapped_column(Integer, default=0)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # How many times in a row the cooldown has started without a success (it doubles each time),
    # and until when a Retry-After forbids trying (a good health probe does not end that early).
    cooldown_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cooldown_cause: Mapped[str] = mapped_column(String(40), default="", server_default="")


async def announce_config_change(session: AsyncSession) -> None:
    """Queue a NOTIFY so every replica reloads its routing catalog once this transaction commits."""
    await session.execute(text("SELECT pg_notify(:c, '')"), {"c": CONFIG_CHANNEL})
