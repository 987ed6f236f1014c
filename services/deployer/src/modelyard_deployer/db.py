"""Tables of the deployer's own Postgres schema, and hooks run when a transaction ends."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    SessionTransaction,
    mapped_column,
)

from modelyard_common.db import NamedInWorkspace, TimestampMixin, new_id, schema_metadata, utcnow
from modelyard_common.errors import ConflictError
from modelyard_common.governance.tables import projection_models
from modelyard_common.infrastructure import infrastructure_models
from modelyard_deployer.settings import SCHEMA


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


class RegistryModel(Base):
    """The deployer's projection of a registry AI model, fed by `registry.model.*` events."""

    __tablename__ = "registry_models"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workspace: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(200))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Time of the event (or HTTP read) the row reflects: an older event never overwrites it.
    source_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class AccessGrant(TimestampMixin, Base):
    """A per-model grant (viewer, deployer, editor) to one user or one role."""

    __tablename__ = "access_grants"
    __table_args__ = (UniqueConstraint("model_id", "subject_type", "subject"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace: Mapped[str] = mapped_column(String(200), index=True)
    model_id: Mapped[uuid.UUID] = mapped_column(index=True)
    subject_type: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(10))
    created_by: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(Integer, default=1)


class ModelVersion(Base):
    """An uploaded AI project zip and its run manifest; immutable once created."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "number"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace: Mapped[str] = mapped_column(String(200), index=True)
    model_id: Mapped[uuid.UUID] = mapped_column(index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(30))
    comment: Mapped[str] = mapped_column(String(512), default="")
    manifest: Mapped[dict[str, Any]] = mapped_column(JSONB)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    uncompressed_bytes: Mapped[int] = mapped_column(BigInteger)
    file_count: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Deleted versions keep their row (and number) so deployment history still names them.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Device(NamedInWorkspace, TimestampMixin, Base):
    """An edge device running the agent; its token is stored as a SHA-256 only."""

    __tablename__ = "devices"

    labels: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_rotated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    agent_version: Mapped[str | None] = mapped_column(String(100))
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # Registered (at onboarding, or by an admin), never taken from the device's own messages.
    advertise_host: Mapped[str | None] = mapped_column(String(255))
    ingress_port: Mapped[int | None] = mapped_column(Integer)
    agent_epoch: Mapped[str | None] = mapped_column(String(64))
    retired_agent_epochs: Mapped[list[str]] = mapped_column(JSONB, default=list)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the device's heartbeats say their interval is (bounded; NULL: not said yet).
    heartbeat_interval_s: Mapped[float | None] = mapped_column(Double)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revision: Mapped[int] = mapped_column(Integer, default=1)


class ProvisioningToken(NamedInWorkspace, TimestampMixin, Base):
    """A token an admin hands out to onboard devices: expiry, uses, default labels."""

    __tablename__ = "provisioning_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Deployment(TimestampMixin, Base):
    """One model version desired on one device, with its desired and last reported state."""

    __tablename__ = "deployments"
    __table_args__ = (
        # One live deployment of a model per device: deploying another version redeploys it.
        Index(
            "uq_deployments_device_model_live",
            "device_id",
            "model_id",
            unique=True,
            postgresql_where=text("desired_state <> 'removed'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace: Mapped[str] = mapped_column(String(200), index=True)
    model_id: Mapped[uuid.UUID] = mapped_column(index=True)
    device_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.devices.id", ondelete="RESTRICT"), index=True
    )
    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.model_versions.id", ondelete="RESTRICT"), index=True
    )
    previous_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.model_versions.id", ondelete="RESTRICT"), index=True
    )
    running_version_id: Mapped[uuid.UUID | None] = mapped_column()
    desired_state: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    state_message: Mapped[str] = mapped_column(Text, default="")
    # Grows with every command; the agent applies only a higher one.
    generation: Mapped[int] = mapped_column(Integer, default=1)
    # Generation at which the deployer itself last set `state` (deploy, rollback, cancel): a
    # report about an older generation is kept in history but no longer moves `state`.
    state_generation: Mapped[int] = mapped_column(Integer, default=1)
    # Highest agent report sequence applied; lower or equal ones are late or duplicates.
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    # Added to the agent's sequences since its data dir was last renewed (they restart at 1).
    sequence_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    host_port: Mapped[int | None] = mapped_column(Integer)
    # Set while it runs only because the workspace's gate is `warn` (why it would be refused).
    policy_warning: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When the gate last judged running it (deploy, redeploy, start, restart, rollback), on the
    # approval the deployer knew then: an approval change it hears of later, made before this,
    # judges it again as a new deployment.
    run_judged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The OpenAI-compatible endpoint announced (endpoint_ready) and not yet withdrawn.
    base_url: Mapped[str | None] = mapped_column(String(2048))
    endpoint_version_id: Mapped[uuid.UUID | None] = mapped_column()
    endpoint_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(Integer, default=1)


class DeploymentHealth(Base):
    """How a deployment's container fared at the latest heartbeat that listed it."""

    __tablename__ = "deployment_health"

    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.deployments.id", ondelete="CASCADE"), primary_key=True
    )
    probe_ok: Mapped[bool | None] = mapped_column(Boolean)
    probe_status: Mapped[int | None] = mapped_column(Integer)
    probe_error: Mapped[str | None] = mapped_column(String(200))
    probed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    restarts: Mapped[int | None] = mapped_column(Integer)
    memory_mb: Mapped[float | None] = mapped_column(Double)
    memory_limit_mb: Mapped[float | None] = mapped_column(Double)
    cpu_percent: Mapped[float | None] = mapped_column(Double)
    sampled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The deployer's time of the heartbeat (devices' clocks drift).
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeploymentEvent(Base):
    """One entry of a deployment's history: a reported state, or an action taken on it."""

    __tablename__ = "deployment_events"
    __table_args__ = (
        # A redelivered report is recorded once.
        Index(
            "uq_deployment_events_sequence",
            "deployment_id",
            "sequence",
            unique=True,
            postgresql_where=text("sequence IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(200))
    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.deployments.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[uuid.UUID] = mapped_column(index=True)
    device_id: Mapped[uuid.UUID] = mapped_column()
    version_id: Mapped[uuid.UUID | None] = mapped_column()
    source: Mapped[str] = mapped_column(String(10))
    action: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")
    log_tail: Mapped[list[str]] = mapped_column(JSONB, default=list)
    generation: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str | None] = mapped_column(String(200))
    # False for a late report: kept as history, but it did not move the deployment's state.
    applied: Mapped[bool] = mapped_column(Boolean, default=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Rollout(TimestampMixin, Base):
    """A version sent to many devices in waves, gated on health, with its abort rule."""

    __tablename__ = "rollouts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace: Mapped[str] = mapped_column(String(200), index=True)
    model_id: Mapped[uuid.UUID] = mapped_column(index=True)
    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.model_versions.id", ondelete="RESTRICT")
    )
    # The request as given: target (device_ids or selector), waves, abort rule, timeouts.
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # running, paused, aborting, completed, aborted
    state: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    current_wave: Mapped[int] = mapped_column(Integer, default=0)
    wave_count: Mapped[int] = mapped_column(Integer)
    # When the current wave was sent (None: not yet); a pause shifts it on resume.
    wave_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(Integer, default=1)


class RolloutDevice(Base):
    """One device of a rollout: its wave, what it ran before, and how it fares."""

    __tablename__ = "rollout_devices"
    __table_args__ = (
        # A device is in one unfinished rollout at a time.
        Index(
            "uq_rollout_devices_active_device",
            "device_id",
            unique=True,
            postgresql_where=text("active"),
        ),
    )

    rollout_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.rollouts.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.devices.id", ondelete="RESTRICT"), primary_key=True
    )
    wave: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # waiting, updating, healthy, failed, skipped, rolled_back, removed
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    deployment_id: Mapped[uuid.UUID | None] = mapped_column()
    # The version the device ran before its wave (None: the model was not on it).
    previous_version_id: Mapped[uuid.UUID | None] = mapped_column()
    had_deployment: Mapped[bool] = mapped_column(Boolean, default=False)
    healthy_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class RolloutEvent(Base):
    """One entry of a rollout's history: a wave started or passed, a device skipped, ..."""

    __tablename__ = "rollout_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    rollout_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.rollouts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    wave: Mapped[int | None] = mapped_column(Integer)
    device_id: Mapped[uuid.UUID | None] = mapped_column()
    message: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str | None] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


ModelApproval, WorkspacePolicy = projection_models(Base)
infrastructure = infrastructure_models(Base)
OutboxEvent, ProcessedEvent, IdempotencyRecord = infrastructure


_ON_COMMIT = "modelyard_on_commit"
_ON_ROLLBACK = "modelyard_on_rollback"


async def add_unique(session: AsyncSession, row: Base, *, conflict: str) -> None:
    """Add `row` and flush it; a unique key it breaks (a concurrent request's row) is a 409."""
    session.add(row)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise ConflictError(conflict) from exc


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction commits (never if it rolls back)."""
    session.info.setdefault(_ON_COMMIT, []).append(action)


def after_rollback(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run `action` if the session's transaction rolls back (never once it commits)."""
    session.info.setdefault(_ON_ROLLBACK, []).append(action)


@event.listens_for(Session, "after_commit")
def _run_commit_actions(session: Session) -> None:
    session.info.pop(_ON_ROLLBACK, None)
    for action in session.info.pop(_ON_COMMIT, []):
        action()


@event.listens_for(Session, "after_soft_rollback")
def _run_rollback_actions(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is not None:
        return  # a savepoint: the outer transaction may still commit
    session.info.pop(_ON_COMMIT, None)
    for action in session.info.pop(_ON_ROLLBACK, []):
        action()
