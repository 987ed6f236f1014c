"""Cooldown, health and concurrency of instances: local fast view, shared through Postgres.

Each replica decides on its own, from memory, whether to try an instance. State changes that other
replicas must know (cooldown started, extended or cleared; health check down/up) are written to
`gateway.instance_states` and announced with NOTIFY, so every replica applies them within
milliseconds; a periodic reload covers lost notifications.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard_gateway.runtime import repository
from modelyard_gateway.runtime.catalog import InstanceRoute

log = logging.getLogger("modelyard.gateway.health")

SKIP_DOWN = "down"
SKIP_COOLDOWN = "cooldown"
SKIP_TRIAL = "cooldown_trial_in_progress"
SKIP_CAPACITY = "at_capacity"


@dataclass(slots=True)
class InstanceHealth:
    """What one replica knows about one instance right now."""

    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    health_down: bool = False
    trial_in_flight: bool = False
    in_flight: int = 0
    reason: str = ""


@dataclass(slots=True)
class Ticket:
    """Admission of one request to one instance; give it back with `HealthBoard.release`."""

    instance_id: uuid.UUID
    trial: bool


def _epoch(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


class HealthBoard:
    """Admits requests to instances and records their outcomes."""

    def __init__(
        self,
        *,
        cooldown_failures: int,
        cooldown_s: float,
        max_retry_after_s: float,
    ) -> None:
        self.cooldown_failures = cooldown_failures
        self.cooldown_s = cooldown_s
        self.max_retry_after_s = max_retry_after_s
        self._states: dict[uuid.UUID, InstanceHealth] = {}
        self._dirty: set[uuid.UUID] = set()
        self._changed = asyncio.Event()

    def state(self, instance_id: uuid.UUID) -> InstanceHealth:
        """Return (creating it if needed) the state of one instance."""
        st = self._states.get(instance_id)
        if st is None:
            st = self._states[instance_id] = InstanceHealth()
        return st

    def admit(self, inst: InstanceRoute) -> Ticket | str:
        """Return a ticket to try `inst` now, or the reason it must be skipped."""
        st = self.state(inst.id)
        if st.health_down:
            return SKIP_DOWN
        trial = False
        if st.cooldown_until:
            if time.time() < st.cooldown_until:
                return SKIP_COOLDOWN
            if st.trial_in_flight:
                return SKIP_TRIAL
            trial = True
        if inst.max_concurrency is not None and st.in_flight >= inst.max_concurrency:
            return SKIP_CAPACITY
        st.in_flight += 1
        if trial:
            st.trial_in_flight = True
        return Ticket(inst.id, trial)

    def succeeded(self, ticket: Ticket) -> None:
        """Record a good answer: failures reset, a half-open trial closes the cooldown."""
        st = self.state(ticket.instance_id)
        self._release(st, ticket)
        st.consecutive_failures = 0
        if ticket.trial and st.cooldown_until:
            st.cooldown_until = 0.0
            st.reason = ""
            self._mark(ticket.instance_id)

    def failed(self, ticket: Ticket, reason: str, retry_after: float | None = None) -> None:
        """Record a failed attempt; start or extend the cooldown when it is due."""
        st = self.state(ticket.instance_id)
        self._release(st, ticket)
        self.record_failure(ticket.instance_id, reason, retry_after, trial=ticket.trial)

    def record_failure(
        self, instance_id: uuid.UUID, reason: str, retry_after: float | None, *, trial: bool
    ) -> None:
        """Count a failure of an instance outside of an admission (e.g. a dropped stream)."""
        st = self.state(instance_id)
        st.consecutive_failures += 1
        now = time.time()
        until = 0.0
        if trial or now < st.cooldown_until or st.consecutive_failures >= self.cooldown_failures:
            until = now + self.cooldown_s
        if retry_after is not None and retry_after > 0:
            until = max(until, now + min(retry_after, self.max_retry_after_s))
        if until > st.cooldown_until:
            st.cooldown_until = until
            st.reason = reason
            self._mark(instance_id)

    def abandoned(self, ticket: Ticket) -> None:
        """Give back a ticket whose request ended without a verdict (e.g. client went away)."""
        self._release(self.state(ticket.instance_id), ticket)

    def apply_shared(self, payload: dict[str, Any]) -> None:
        """Apply a state change announced by any replica (or read from the table)."""
        instance_id = uuid.UUID(str(payload["instance_id"]))
        st = self.state(instance_id)
        until = float(payload.get("cooldown_until") or 0.0)
        if until == 0.0 and st.cooldown_until:
            st.consecutive_failures = 0
        st.cooldown_until = until
        st.health_down = bool(payload.get("health_down"))
        st.reason = str(payload.get("reason") or "")

    def _release(self, st: InstanceHealth, ticket: Ticket) -> None:
        st.in_flight = max(0, st.in_flight - 1)
        if ticket.trial:
            st.trial_in_flight = False

    def _mark(self, instance_id: uuid.UUID) -> None:
        self._dirty.add(instance_id)
        self._changed.set()

    async def publish_forever(self, engine: AsyncEngine) -> None:
        """Write this replica's cooldown changes to the shared table and announce them."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            dirty, self._dirty = self._dirty, set()
            for instance_id in dirty:
                st = self.state(instance_id)
                until = (
                    datetime.fromtimestamp(st.cooldown_until, UTC) if st.cooldown_until else None
                )
                try:
                    await repository.publish_cooldown(engine, instance_id, until, st.reason)
                except (DBAPIError, OSError) as exc:
                    log.warning("cannot share state of instance %s: %s", instance_id, exc)
                    self._dirty.add(instance_id)
                    await asyncio.sleep(1.0)
                    self._changed.set()

    async def reload(self, engine: AsyncEngine) -> None:
        """Replace the shared part of every instance's state with the table's."""
        for row in await repository.shared_states(engine):
            self.apply_shared(
                {
                    "instance_id": row.instance_id,
                    "cooldown_until": _epoch(row.cooldown_until),
                    "health_down": row.health_down,
                    "reason": row.reason,
                }
            )


def decode_notification(payload: str) -> dict[str, Any]:
    """Return the state announced by a NOTIFY payload."""
    data: dict[str, Any] = orjson.loads(payload)
    return data
