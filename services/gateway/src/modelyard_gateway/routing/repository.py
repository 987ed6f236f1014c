"""Every SQL statement of the runtime: the routing config it loads and the state it shares."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from modelyard_gateway.db import (
    STATE_CHANNEL,
    ApiKey,
    DeviceEndpoint,
    GroupMember,
    ModelGroup,
    ModelInstance,
    WorkspaceLimits,
)


@dataclass(frozen=True, slots=True)
class RoutingRows:
    """What the routing catalog is built from, read in one snapshot."""

    instances: Sequence[ModelInstance]
    groups: Sequence[ModelGroup]
    members: Sequence[GroupMember]
    keys: Sequence[ApiKey]
    endpoints: Sequence[DeviceEndpoint]
    ceilings: Sequence[WorkspaceLimits]


async def routing_rows(engine: AsyncEngine) -> RoutingRows:
    """Return every instance, group, membership (in order), live key, device endpoint and
    workspace ceiling."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        # One snapshot: the four reads see the same committed state.
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        instances = (await session.scalars(select(ModelInstance))).all()
        groups = (await session.scalars(select(ModelGroup))).all()
        members = (await session.scalars(select(GroupMember).order_by(GroupMember.position))).all()
        keys = (await session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))).all()
        endpoints = (await session.scalars(select(DeviceEndpoint))).all()
        ceilings = (await session.scalars(select(WorkspaceLimits))).all()
    return RoutingRows(instances, groups, members, keys, endpoints, ceilings)


async def live_key(engine: AsyncEngine, *, key_hash: str) -> ApiKey | None:
    """Return the non-revoked key with this hash, or None."""
    async with AsyncSession(engine) as session:
        return await session.scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )


async def shared_states(engine: AsyncEngine) -> Sequence[Row[Any]]:
    """Return the shared state row of every instance."""
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT instance_id, cooldown_until, cooldown_level, retry_until, cooldown_cause,"
                " health_down, reason FROM gateway.instance_states"
            )
        )
        return result.all()


_NOTIFY_ROW = """
SELECT pg_notify(:channel, json_build_object(
    'instance_id', s.instance_id,
    'cooldown_until', COALESCE(EXTRACT(EPOCH FROM s.cooldown_until), 0),
    'cooldown_level', s.cooldown_level,
    'retry_until', COALESCE(EXTRACT(EPOCH FROM s.retry_until), 0),
    'cooldown_cause', s.cooldown_cause,
    'health_down', s.health_down,
    'reason', s.reason)::text)
FROM gateway.instance_states s WHERE s.instance_id = :id
"""


async def _instance_exists(conn: AsyncConnection, instance_id: uuid.UUID) -> bool:
    """Return whether the instance still exists (a state row of a deleted one is not written)."""
    found = await conn.scalar(
        text("SELECT 1 FROM gateway.model_instances WHERE id = :id"), {"id": instance_id}
    )
    return bool(found)


async def _write_state(
    engine: AsyncEngine, instance_id: uuid.UUID, statement: str, values: dict[str, Any]
) -> None:
    """Run `statement` on an existing instance's shared state row, then notify every replica."""
    async with engine.begin() as conn:
        if not await _instance_exists(conn, instance_id):
            return
        await conn.execute(text(statement), {"id": instance_id, **values})
        await conn.execute(text(_NOTIFY_ROW), {"channel": STATE_CHANNEL, "id": instance_id})


async def publish_cooldown(
    engine: AsyncEngine,
    instance_id: uuid.UUID,
    *,
    until: datetime | None,
    level: int,
    retry_until: datetime | None,
    cause: str,
    reason: str,
) -> None:
    """Store an instance's cooldown (and its backoff) in the shared table and notify replicas."""
    await _write_state(
        engine,
        instance_id,
        "INSERT INTO gateway.instance_states (instance_id, cooldown_until, cooldown_level,"
        " retry_until, cooldown_cause, health_down, check_failures, reason, updated_at)"
        " VALUES (:id, :until, :level, :retry_until, :cause, false, 0, :reason, now())"
        " ON CONFLICT (instance_id) DO UPDATE SET cooldown_until = EXCLUDED.cooldown_until,"
        " cooldown_level = EXCLUDED.cooldown_level, retry_until = EXCLUDED.retry_until,"
        " cooldown_cause = EXCLUDED.cooldown_cause,"
        " reason = EXCLUDED.reason, updated_at = now()",
        {
            "until": until,
            "level": level,
            "retry_until": retry_until,
            "cause": cause[:40],
            "reason": reason[:500],
        },
    )


# Failure codes a good health probe disproves (so it ends their cooldown early).
REACHABILITY_CAUSES = ("connect_failed", "connect_timeout", "dropped", "connection_error")
_REACHABILITY = "(" + ", ".join(f"'{c}'" for c in REACHABILITY_CAUSES) + ")"


async def claim_check(engine: AsyncEngine, instance_id: uuid.UUID, interval_s: float) -> bool:
    """Return whether this replica won the right to health-check an instance this interval."""
    async with engine.begin() as conn:
        if not await _instance_exists(conn, instance_id):
            return False
        won = await conn.scalar(
            text(
                "INSERT INTO gateway.instance_states"
                " (instance_id, health_down, check_failures, reason, checked_at, updated_at)"
                " VALUES (:id, false, 0, '', now(), now())"
                " ON CONFLICT (instance_id) DO UPDATE SET checked_at = now()"
                " WHERE gateway.instance_states.checked_at IS NULL"
                " OR gateway.instance_states.checked_at"
                " < now() - make_interval(secs => :window)"
                " RETURNING instance_id"
            ),
            {"id": instance_id, "window": interval_s * 0.8},
        )
        return won is not None


async def publish_check(
    engine: AsyncEngine, instance_id: uuid.UUID, *, ok: bool, reason: str, threshold: int
) -> None:
    """Store a health check result (down after `threshold` failed checks) and notify replicas.

    A good check also ends early (and resets the backoff of) a cooldown that a reachability
    failure started (refused, timed-out or dropped connections): the probe proves the opposite.
    Cooldowns for slow or bad answers (first-byte timeouts, 5xx, 429 with its Retry-After) run
    their course and end with a half-open trial, since a health path that answers says nothing
    about completions.
    """
    await _write_state(
        engine,
        instance_id,
        "INSERT INTO gateway.instance_states AS s"
        " (instance_id, health_down, check_failures, reason, checked_at, updated_at)"
        " VALUES (:id, :first_down, :first_failures, :reason, now(), now())"
        " ON CONFLICT (instance_id) DO UPDATE SET"
        " check_failures = CASE WHEN :ok THEN 0 ELSE s.check_failures + 1 END,"
        " health_down = CASE WHEN :ok THEN false"
        " ELSE s.check_failures + 1 >= :threshold END,"
        " reason = CASE WHEN NOT :ok THEN :reason WHEN s.health_down"
        f" OR s.cooldown_cause IN {_REACHABILITY} THEN '' ELSE s.reason END,"
        f" cooldown_until = CASE WHEN :ok AND s.cooldown_cause IN {_REACHABILITY}"
        " THEN NULL ELSE s.cooldown_until END,"
        f" cooldown_level = CASE WHEN :ok AND s.cooldown_cause IN {_REACHABILITY}"
        " THEN 0 ELSE s.cooldown_level END,"
        f" cooldown_cause = CASE WHEN :ok AND s.cooldown_cause IN {_REACHABILITY}"
        " THEN '' ELSE s.cooldown_cause END,"
        " checked_at = now(), updated_at = now()",
        {
            "ok": ok,
            "reason": "" if ok else reason[:500],
            "threshold": threshold,
            "first_down": (not ok) and threshold <= 1,
            "first_failures": 0 if ok else 1,
        },
    )
