"""Usage of registry models: counted in memory per request, written and announced per interval.

For each request to a group bound to a registry model (`registry_model_id`), the proxy tells the
replica's `UsageRecorder` how it ended (answered, or an error status / a failed stream) and, when
the backend reported it, the `usage` of the answer. The recorder adds that to an in-memory tally
per (workspace, model, UTC day): a dict update, no I/O on the request's path. Every
`MODELYARD_GATEWAY_USAGE_FLUSH_S` seconds it writes the tallies in one transaction that adds them
to `gateway.model_usage` and puts one `gateway.usage.recorded` event per tally in the outbox, so the
table and the events the registry adds up never disagree.

What a crash loses, decided: the counts of the interval not yet flushed on the replica that
crashed (at most `usage_flush_s` seconds of its traffic, 5 s by default). Writing per request
would put a database round trip on every request's path for a report counted per day; a
graceful stop flushes, so only a crash (or a kill) loses anything, and only on that replica.
A flush that fails (database unreachable) keeps its counts and they go with the next flush.
The one way to count twice: a connection lost while its COMMIT is under way, whose outcome the
replica cannot know; it then assumes the commit did not happen and counts again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.contracts import GATEWAY_USAGE_RECORDED, UsageCounts, UsageRecorded
from modelyard_common.db import utcnow
from modelyard_common.events import new_event
from modelyard_common.outbox import enqueue
from modelyard_common.periodic import Periodic
from modelyard_gateway.db import OutboxEvent
from modelyard_gateway.routing.catalog import GroupRoute
from modelyard_gateway.usage import repository

log = logging.getLogger("modelyard.gateway.usage")

SOURCE = "modelyard/gateway"
_DAY_S = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_USAGE = b'"usage"'

UsageKey = tuple[str, uuid.UUID, int]  # workspace, registry model id, UTC day (days since 1970)


@dataclass(slots=True)
class Tally:
    """What one (workspace, model, day) counted since the last flush."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def add(self, other: Tally) -> None:
        """Add another tally's counts to this one."""
        self.requests += other.requests
        self.errors += other.errors
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens


def _tokens(value: object) -> int:
    """Return a reported token count, or 0 for anything that is not a non-negative integer."""
    return value if type(value) is int and value > 0 else 0


def reported_usage(answer: object) -> Mapping[str, Any] | None:
    """Return the `usage` object of a parsed OpenAI answer, or None if it has none."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    return usage if isinstance(usage, dict) else None


class StreamUsage:
    """Finds the `usage` a stream reports (a chunk carrying it, e.g. with `include_usage`).

    Only a substring test runs per relayed block; the last block that mentions `usage` is kept
    and parsed once, when the stream has ended.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: bytes | None = None

    def feed(self, data: bytes) -> None:
        """Look at a block of the stream as it is relayed."""
        if _USAGE in data:
            self._last = data

    def usage(self) -> Mapping[str, Any] | None:
        """Return the last `usage` object the stream carried, or None."""
        if self._last is None:
            return None
        for line in reversed(self._last.splitlines()):
            line = line.strip()
            if not line.startswith(b"data:") or _USAGE not in line:
                continue
            try:
                usage = reported_usage(orjson.loads(line[5:]))
            except orjson.JSONDecodeError:
                continue  # cut by the block boundary, or not JSON: look further back
            if usage is not None:
                return usage
        return None


class UsageRecorder(Periodic):
    """Counts one replica's requests to bound groups and flushes them every interval."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        flush_s: float,
        replica: str,
    ) -> None:
        super().__init__(flush_s, name="gateway usage flush", log=log)
        self.sessionmaker = sessionmaker
        self.replica = replica
        self._pending: dict[UsageKey, Tally] = {}
        self._since = utcnow()
        self._lock = asyncio.Lock()

    def record(
        self, group: GroupRoute, *, error: bool, usage: Mapping[str, Any] | None = None
    ) -> None:
        """Count one request to `group` (nothing when it follows no registry model)."""
        model_id = group.registry_model_id
        if model_id is None:
            return
        key = (group.workspace, model_id, int(time.time()) // _DAY_S)
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = Tally()
        tally.requests += 1
        if error:
            tally.errors += 1
        if usage:
            prompt = _tokens(usage.get("prompt_tokens"))
            completion = _tokens(usage.get("completion_tokens"))
            tally.prompt_tokens += prompt
            tally.completion_tokens += completion
            tally.total_tokens += _tokens(usage.get("total_tokens")) or prompt + completion

    @property
    def pending(self) -> int:
        """Return how many (workspace, model, day) tallies wait for the next flush."""
        return len(self._pending)

    async def flush(self) -> int:
        """Write what was counted since the last flush, with its events; return how many tallies.

        On failure the counts are kept for the next flush (and the error is raised).
        """
        async with self._lock:
            if not self._pending:
                self._since = utcnow()
                return 0
            pending, self._pending = self._pending, {}
            since, until = self._since, utcnow()
            try:
                async with self.sessionmaker() as session, session.begin():
                    await self._write(session, pending, since, until)
            except BaseException:
                for key, tally in pending.items():
                    kept = self._pending.get(key)
                    if kept is None:
                        self._pending[key] = tally
                    else:
                        kept.add(tally)
                raise
            self._since = until
            return len(pending)

    async def _write(
        self,
        session: AsyncSession,
        pending: Mapping[UsageKey, Tally],
        since: datetime,
        until: datetime,
    ) -> None:
        rows = []
        for (workspace, model_id, day_number), tally in pending.items():
            day = date.fromordinal(_EPOCH_ORDINAL + day_number)
            counts = asdict(tally)
            rows.append(repository.as_row(workspace, model_id, day, counts))
            data = UsageRecorded(
                workspace=workspace,
                model_id=model_id,
                day=day,
                deltas=UsageCounts(**counts),
                gateway_replica=self.replica,
                interval_start=since,
                interval_end=until,
            )
            event = new_event(
                type=GATEWAY_USAGE_RECORDED,
                source=SOURCE,
                subject=str(model_id),
                data=data.model_dump(mode="json"),
            )
            await enqueue(session, OutboxEvent, event)
        await repository.add_usage(session, rows=rows)

    async def tick(self) -> None:
        """Flush what was counted this interval."""
        await self.flush()

    def abandoned(self) -> None:
        """Say how many tallies a stop could not write."""
        if self.pending:
            log.error("usage recorder stopped with %d tallies unwritten (lost)", self.pending)
