"""Cooldown, health and concurrency of instances: local fast view, shared through Postgres.

Each replica decides on its own, from memory, whether to try an instance. State changes that other
replicas must know (cooldown started, extended or cleared, with its backoff level and Retry-After
floor; health check down/up) are written to `gateway.instance_states` and announced with NOTIFY,
so every replica applies them within milliseconds; a periodic reload covers lost notifications.

Failures are counted per replica, over a window, and once per outage: a failure counts only when
its request started after the instance's last counted failure, so the requests that were in flight
when a backend died (they all fail together) count as one. The half-open trial is per replica too.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard_gateway.routing import repository
from modelyard_gateway.routing.catalog import InstanceRoute

log = logging.getLogger("modelyard.gateway.health")

SKIP_DOWN = "down"
SKIP_COOLDOWN = "cooldown"
SKIP_TRIAL = "cooldown_trial_in_progress"
SKIP_CAPACITY = "at_capacity"
# Skips that are tried anyway when nothing else answered (a capacity cap is the owner's limit).
TRY_ANYWAY = frozenset({SKIP_DOWN, SKIP_COOLDOWN, SKIP_TRIAL})
# Failures so costly that one is enough to cool the instance (each held a request that long).
COOL_AT_ONCE = frozenset({"first_byte_timeout", "connect_timeout"})
MAX_LEVEL = 30
# How much one measurement moves an instance's recent time to first byte (EWMA).
TTFB_SMOOTHING = 0.3


@dataclass(slots=True)
class InstanceHealth:
    """What one replica knows about one instance right now."""

    failures: int = 0  # counted in the current window (this replica)
    window_start: float = 0.0
    last_counted_failure: float = 0.0
    cooldown_until: float = 0.0  # shared
    cooldown_started: float = 0.0
    cooldown_level: int = 0  # shared: cooldowns in a row without a success
    retry_until: float = 0.0  # shared: Retry-After floor
    cause: str = ""  # shared: the failure code that started the cooldown
    health_down: bool = False  # shared
    trial_in_flight: bool = False
    in_flight: int = 0
    reason: str = ""
    ttfb: float = 0.0  # recent time to first byte (EWMA, seconds; 0: not measured yet)

    @property
    def consecutive_failures(self) -> int:
        """Return the failures counted in the current window (kept for diagnostics)."""
        return self.failures


@dataclass(slots=True)
class Ticket:
    """Admission of one request to one instance; give it back with `HealthBoard.release`."""

    instance_id: uuid.UUID
    trial: bool
    started: float = 0.0
    forced: bool = False  # tried although cooling or down: nothing else answered


def _epoch(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def _dt(value: float) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


class HealthBoard:
    """Admits requests to instances and records their outcomes."""

    def __init__(
        self,
        *,
        cooldown_failures: int,
        cooldown_s: float,
        max_retry_after_s: float,
        cooldown_max_s: float | None = None,
        cooldown_jitter: float = 0.2,
        failure_window_s: float = 10.0,
    ) -> None:
        self.cooldown_failures = cooldown_failures
        self.cooldown_s = cooldown_s
        self.cooldown_max_s = max(cooldown_s, cooldown_max_s or cooldown_s * 30)
        self.cooldown_jitter = cooldown_jitter
        self.failure_window_s = failure_window_s
        self.max_retry_after_s = max_retry_after_s
        self._states: dict[uuid.UUID, InstanceHealth] = {}
        self._dirty: set[uuid.UUID] = set()
        self._publishing: set[uuid.UUID] = set()  # taken off `_dirty`, not yet committed
        self._changed = asyncio.Event()

    def state(self, instance_id: uuid.UUID) -> InstanceHealth:
        """Return (creating it if needed) the state of one instance."""
        st = self._states.get(instance_id)
        if st is None:
            st = self._states[instance_id] = InstanceHealth()
        return st

    def cooldown_duration(self, level: int) -> float:
        """Return the cooldown after `level` earlier ones in a row: doubling, capped, jittered."""
        full = min(self.cooldown_max_s, self.cooldown_s * float(2 ** min(level, MAX_LEVEL)))
        # Jitter only shortens, so the cap stays a cap; replicas cooling together spread out.
        return full * random.uniform(1.0 - self.cooldown_jitter, 1.0)

    def admit(self, inst: InstanceRoute) -> Ticket | str:
        """Return a ticket to try `inst` now, or the reason it must be skipped."""
        st = self.state(inst.id)
        if st.health_down:
            return SKIP_DOWN
        trial = False
        now = time.time()
        if st.cooldown_until:
            if now < st.cooldown_until:
                return SKIP_COOLDOWN
            if st.trial_in_flight:
                return SKIP_TRIAL
            trial = True
        if inst.max_concurrency is not None and st.in_flight >= inst.max_concurrency:
            return SKIP_CAPACITY
        st.in_flight += 1
        if trial:
            st.trial_in_flight = True
        return Ticket(inst.id, trial, now)

    def force(self, inst: InstanceRoute) -> Ticket:
        """Return a ticket to try a cooling or down instance anyway (nothing else answered)."""
        st = self.state(inst.id)
        st.in_flight += 1
        return Ticket(inst.id, False, time.time(), forced=True)

    def retry_order(self, inst: InstanceRoute) -> tuple[bool, float]:
        """Return the sort key of a skipped instance: cooling ones by cooldown end, then down."""
        st = self.state(inst.id)
        return (st.health_down, st.cooldown_until)

    def succeeded(self, ticket: Ticket) -> None:
        """Record a good answer: failures reset; fresh evidence closes the cooldown."""
        st = self.state(ticket.instance_id)
        self._release(st, ticket)
        st.failures = 0
        if not (st.cooldown_until or st.cooldown_level):
            return  # the healthy hot path: nothing to share
        # A request admitted before the cooldown began says nothing about the instance now.
        if ticket.trial or ticket.forced or ticket.started >= st.cooldown_started:
            self.clear_cooldown(ticket.instance_id)

    def clear_cooldown(self, instance_id: uuid.UUID) -> None:
        """End the cooldown (and its backoff) now, unless a Retry-After still holds."""
        st = self.state(instance_id)
        if st.retry_until > time.time():
            return
        st.cooldown_until = 0.0
        st.cooldown_level = 0
        st.retry_until = 0.0
        st.cause = ""
        st.reason = ""
        self._mark(instance_id)

    def failed(
        self, ticket: Ticket, reason: str, retry_after: float | None = None, code: str = ""
    ) -> None:
        """Record a failed attempt; start or extend the cooldown when it is due."""
        st = self.state(ticket.instance_id)
        self._release(st, ticket)
        self.record_failure(
            ticket.instance_id,
            reason,
            retry_after,
            trial=ticket.trial,
            started=ticket.started,
            code=code,
        )

    def record_failure(
        self,
        instance_id: uuid.UUID,
        reason: str,
        retry_after: float | None,
        *,
        trial: bool,
        started: float | None = None,
        code: str = "",
    ) -> None:
        """Count a failure of an instance (an attempt, or a stream that broke later)."""
        st = self.state(instance_id)
        now = time.time()
        changed = False
        if retry_after is not None and retry_after > 0:
            floor = now + min(retry_after, self.max_retry_after_s)
            if floor > st.retry_until:
                st.retry_until = floor
                changed = True
            if floor > st.cooldown_until:
                st.cooldown_until = floor
                st.cooldown_started = now
                st.cause = code or "rate_limited"
                st.reason = reason
                changed = True
        began = now if started is None else started
        # Requests that were in flight when the last counted failure happened fail with it:
        # one outage, one count.
        if trial or began > st.last_counted_failure:
            st.last_counted_failure = now
            if now - st.window_start > self.failure_window_s:
                st.window_start = now
                st.failures = 0
            st.failures += self.cooldown_failures if code in COOL_AT_ONCE else 1
            if trial or st.failures >= self.cooldown_failures:
                until = now + self.cooldown_duration(st.cooldown_level)
                st.failures = 0
                st.cooldown_level = min(st.cooldown_level + 1, MAX_LEVEL)
                st.cooldown_started = now
                st.cooldown_until = max(until, st.cooldown_until)
                st.cause = code
                st.reason = reason
                changed = True
        if changed:
            self._mark(instance_id)

    def took(self, instance_id: uuid.UUID, seconds: float) -> None:
        """Record how long an instance took to its first byte (per replica, not shared)."""
        st = self.state(instance_id)
        st.ttfb = seconds if not st.ttfb else st.ttfb + TTFB_SMOOTHING * (seconds - st.ttfb)

    def abandoned(self, ticket: Ticket) -> None:
        """Give back a ticket whose request ended without a verdict (e.g. client went away)."""
        self._release(self.state(ticket.instance_id), ticket)

    def apply_shared(self, payload: dict[str, Any]) -> None:
        """Apply a state change announced by any replica (or read from the table).

        A change this replica made and has not yet written is newer than anything read: it is
        kept (and written next), so a periodic reload cannot undo a success seen a moment ago.
        """
        instance_id = uuid.UUID(str(payload["instance_id"]))
        if instance_id in self._dirty or instance_id in self._publishing:
            return
        st = self.state(instance_id)
        until = float(payload.get("cooldown_until") or 0.0)
        if until == 0.0 and st.cooldown_until:
            st.failures = 0
        elif until > st.cooldown_until:
            st.cooldown_started = time.time()
        st.cooldown_until = until
        st.cooldown_level = int(payload.get("cooldown_level") or 0)
        st.retry_until = float(payload.get("retry_until") or 0.0)
        st.cause = str(payload.get("cooldown_cause") or "")
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
            self._publishing = set(dirty)
            for instance_id in dirty:
                st = self.state(instance_id)
                try:
                    await repository.publish_cooldown(
                        engine,
                        instance_id,
                        until=_dt(st.cooldown_until),
                        level=st.cooldown_level,
                        retry_until=_dt(st.retry_until),
                        cause=st.cause,
                        reason=st.reason,
                    )
                except (DBAPIError, OSError) as exc:
                    log.warning("cannot share state of instance %s: %s", instance_id, exc)
                    self._dirty.add(instance_id)
                    await asyncio.sleep(1.0)
                    self._changed.set()
                finally:
                    self._publishing.discard(instance_id)

    async def reload(self, engine: AsyncEngine) -> None:
        """Replace the shared part of every instance's state with the table's."""
        for row in await repository.shared_states(engine):
            self.apply_shared(
                {
                    "instance_id": row.instance_id,
                    "cooldown_until": _epoch(row.cooldown_until),
                    "cooldown_level": row.cooldown_level,
                    "retry_until": _epoch(row.retry_until),
                    "cooldown_cause": row.cooldown_cause,
                    "health_down": row.health_down,
                    "reason": row.reason,
                }
            )


def decode_notification(payload: str) -> dict[str, Any]:
    """Return the state announced by a NOTIFY payload."""
    data: dict[str, Any] = orjson.loads(payload)
    return data
