"""Limits and budgets on the request's path: requests leased in chunks, tokens counted after.

Each client request is measured against its key's limits and its workspace's ceiling (the same
four measures: requests per minute, tokens per minute, tokens per UTC day, tokens per UTC month).
Windows are fixed and aligned to the clock (a minute starts at :00), the day and month are UTC.
Every replica shares one counter row per (scope, measure, window) in `gateway.limit_counters`.

**Requests per minute: never more than the limit, across any number of replicas.** A replica
does not ask the database per request. It *leases* a chunk of the window's allowance (one
`INSERT .. ON CONFLICT DO UPDATE` that grants at most what is left, so the grants of all replicas
together never pass the limit) and spends it locally; it asks for the next chunk before the
last one runs out while the window is far from its limit, and only when it runs out near it.
The price of never overshooting is a bounded undershoot: when the window is used up, each other
replica may still hold up to `chunk - 1` leased requests that it has not spent. With N replicas
a client therefore gets between `limit - (N - 1) * (chunk - 1)` and `limit` requests in a window,
and exactly `limit` when one replica (or one replica at a time) serves it. `chunk` starts at a
twentieth of the limit, between 1 and 100 (a limit of 60 leases 3 at a time), and follows the
replica's own pace: a window that needs its next lease within `LEASE_FAST_S` of the last one
doubles its chunk, one that lasts longer than `LEASE_SLOW_S` halves it back, never above
`max_chunk` (a twentieth of the limit) nor below the first size. A busy replica thus asks the
database about once a second whatever its traffic, and the bound above holds with
`max_chunk`: at most a twentieth of the limit per other replica.

**Tokens (per minute, day, month): counted when the answer says what it used.** A request is
refused when its window is already used up; its tokens are only known once the backend has
answered, so they are added then (to an in-memory tally, written with the others every
`limits_sync_s`). What can pass a token limit is therefore: the tokens of the requests that were
in flight when it was reached, plus what other replicas counted since the last sync (at most
`limits_sync_s` seconds of their traffic). Answers that report no `usage` count no tokens.

**When the database cannot be reached** the replica does not stop serving: it leases from its
own memory, counting on from what it last knew of each window (so one replica stays exact and N
replicas allow at most N times what was left), until the database answers again; it logs both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard_common.periodic import Periodic
from modelyard_gateway import metrics
from modelyard_gateway.limits import repository
from modelyard_gateway.routing.catalog import ClientKey, Limits

log = logging.getLogger("modelyard.gateway.limits")

REQUESTS_PER_MINUTE = "requests_per_minute"
TOKENS_PER_MINUTE = "tokens_per_minute"
TOKENS_PER_DAY = "tokens_per_day"
TOKENS_PER_MONTH = "tokens_per_month"
TOKEN_MEASURES = (TOKENS_PER_MINUTE, TOKENS_PER_DAY, TOKENS_PER_MONTH)

_DAY = 86400


def window_of(measure: str, now: float) -> tuple[int, int]:
    """Return the [start, end) of `measure`'s window holding `now` (epoch seconds, UTC)."""
    if measure in (REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE):
        start = int(now) // 60 * 60
        return start, start + 60
    if measure == TOKENS_PER_DAY:
        start = int(now) // _DAY * _DAY
        return start, start + _DAY
    day = datetime.fromtimestamp(now, UTC)
    first = datetime(day.year, day.month, 1, tzinfo=UTC)
    following = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return int(first.timestamp()), int(following.timestamp())


LEASE_FAST_S = 1.0  # a lease needed sooner than this after the last doubles the chunk
LEASE_SLOW_S = 5.0  # one that lasted longer than this halves it (not below the first size)


def lease_chunk(limit: int) -> int:
    """Return how many requests a replica first leases at a time under `limit` per minute."""
    return max(1, min(100, limit // 20))


def max_chunk(limit: int) -> int:
    """Return the most a replica leases at once under `limit` (a busy replica's chunk)."""
    return max(1, limit // 20)


def next_chunk(limit: int, chunk: int, since_last: float) -> int:
    """Return the chunk to lease now, the last lease of `chunk` having been `since_last` ago."""
    first = lease_chunk(limit)
    chunk = min(max(chunk, first), max_chunk(limit))
    if since_last < LEASE_FAST_S:
        return min(chunk * 2, max_chunk(limit))
    if since_last > LEASE_SLOW_S:
        return max(chunk // 2, first)
    return chunk


def reset_text(seconds: float) -> str:
    """Return a reset time the way OpenAI's `x-ratelimit-reset-*` headers write it (`1m5s`)."""
    return _reset_text(max(0, math.ceil(seconds)))


@lru_cache(maxsize=4096)
def _reset_text(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{rest}s"
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


@dataclass(slots=True)
class Window:
    """One scope's one measure in its current window, as this replica knows it."""

    scope: str
    measure: str
    limit: int
    start: int = 0
    end: int = 0
    shared_used: int = 0  # the counter's `used` when last read or written
    leased: int = 0  # requests leased and not yet spent by this replica
    pending: int = 0  # tokens counted here and not yet written
    exhausted: bool = False  # the database granted nothing more in this window
    touched: float = 0.0  # monotonic time of the last use (the sync reads active windows only)
    lease: asyncio.Future[None] | None = None
    chunk: int = 0  # the size of the last lease (0: none yet)
    leased_at: float = -math.inf  # monotonic time of the last lease

    def roll(self, now: float) -> None:
        """Start the window holding `now` if the current one has ended."""
        if now >= self.end:
            self.start, self.end = window_of(self.measure, now)
            self.shared_used = self.leased = self.pending = 0
            self.exhausted = False

    @property
    def remaining(self) -> int:
        """Return what is left in the window as this replica sees it (never below 0)."""
        if self.measure == REQUESTS_PER_MINUTE:
            return max(0, self.limit - self.shared_used + self.leased)
        return max(0, self.limit - self.shared_used - self.pending)


class Refused(Exception):
    """A request over one of its limits (answered 429 with `Retry-After`)."""

    def __init__(self, window: Window, now: float, *, kind: str) -> None:
        self.window = window
        self.retry_after = max(1, math.ceil(window.end - now))
        self.kind = kind  # "key" or "workspace"
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """Return the client's explanation (OpenAI's words where it has them)."""
        w = self.window
        whose = "API key" if self.kind == "key" else "workspace"
        what = w.measure.replace("_", " ")
        if w.measure in (TOKENS_PER_DAY, TOKENS_PER_MONTH):
            return (
                f"You exceeded your {whose}'s budget of {w.limit} {what}. "
                f"It resets in {reset_text(self.retry_after)}."
            )
        return (
            f"Rate limit reached for {what} on this {whose}: limit {w.limit}. "
            f"Please try again in {reset_text(self.retry_after)}."
        )

    @property
    def code(self) -> str:
        """Return OpenAI's error code for this refusal."""
        if self.window.measure in (TOKENS_PER_DAY, TOKENS_PER_MONTH):
            return "insufficient_quota"
        return "rate_limit_exceeded"

    @property
    def type(self) -> str:
        """Return OpenAI's error type for this refusal."""
        if self.window.measure in (TOKENS_PER_DAY, TOKENS_PER_MONTH):
            return "insufficient_quota"
        return "requests" if self.window.measure == REQUESTS_PER_MINUTE else "tokens"


@dataclass(slots=True)
class Admission:
    """A request let through: what it was measured against, to count its tokens afterwards."""

    windows: tuple[Window, ...]  # the token windows its tokens go to
    requests: Window | None  # the tightest requests-per-minute window, for the headers
    tokens: Window | None  # the tightest tokens-per-minute window, for the headers

    @property
    def counts_tokens(self) -> bool:
        """Return whether the answer's tokens are counted against a limit."""
        return bool(self.windows)

    def spend(self, usage: Mapping[str, Any] | None) -> None:
        """Count the tokens an answer reported (`total_tokens`, else prompt + completion)."""
        if not self.windows or not usage:
            return
        total = _tokens(usage.get("total_tokens")) or (
            _tokens(usage.get("prompt_tokens")) + _tokens(usage.get("completion_tokens"))
        )
        if total:
            for window in self.windows:
                window.pending += total

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Return OpenAI's `x-ratelimit-*` headers for the limits that apply."""
        now = time.time()
        out: list[tuple[bytes, bytes]] = []
        for (limit, remaining, reset), window in (
            (_REQUEST_HEADERS, self.requests),
            (_TOKEN_HEADERS, self.tokens),
        ):
            if window is not None:
                out += [
                    (limit, b"%d" % window.limit),
                    (remaining, b"%d" % window.remaining),
                    (reset, reset_text(window.end - now).encode()),
                ]
        return out


_REQUEST_HEADERS = tuple(
    f"x-ratelimit-{h}-requests".encode() for h in ("limit", "remaining", "reset")
)
_TOKEN_HEADERS = tuple(f"x-ratelimit-{h}-tokens".encode() for h in ("limit", "remaining", "reset"))


NOTHING = Admission((), None, None)


def _tokens(value: object) -> int:
    return value if type(value) is int and value > 0 else 0


_MAX_PLANS = 100_000


@dataclass(slots=True)
class _Plan:
    """The windows one key's requests are measured against (rebuilt when its limits change)."""

    limits: Limits | None
    ceiling: Limits | None
    tokens: tuple[tuple[str, Window], ...]  # (kind, window) of every token measure
    requests: tuple[tuple[str, Window], ...]  # (kind, window) of every requests-per-minute
    token_windows: tuple[Window, ...] = ()
    tokens_per_minute: tuple[Window, ...] = ()
    request_windows: tuple[Window, ...] = ()
    empty: bool = False

    def __post_init__(self) -> None:
        self.token_windows = tuple(w for _, w in self.tokens)
        self.tokens_per_minute = tuple(
            w for w in self.token_windows if w.measure == TOKENS_PER_MINUTE
        )
        self.request_windows = tuple(w for _, w in self.requests)
        self.empty = not self.tokens and not self.requests


def _tightest(windows: tuple[Window, ...]) -> Window | None:
    """Return the window with the least remaining (the one the headers describe)."""
    if len(windows) < 2:
        return windows[0] if windows else None
    return min(windows, key=lambda w: w.remaining)


class Meter(Periodic):
    """One replica's view of every limit: admits requests, counts tokens, syncs the counters."""

    def __init__(self, engine: AsyncEngine, *, sync_s: float, replica: str) -> None:
        super().__init__(sync_s, name="gateway limits sync", log=log)
        self.engine = engine
        self.sync_s = sync_s
        self.replica = replica
        self._windows: dict[tuple[str, str], Window] = {}
        self._plans: dict[uuid.UUID, _Plan] = {}  # per key: its windows, while its limits stand
        self._offline_since: float | None = None
        self._last_purge = 0.0

    # -- the request's path ------------------------------------------------------------------

    async def admit(self, key: ClientKey, ceiling: Limits | None) -> Admission:
        """Return the request's admission, or raise `Refused` when a limit is reached."""
        plan = self._plans.get(key.id)
        if plan is None or plan.limits is not key.limits or plan.ceiling is not ceiling:
            plan = self._plan(key, ceiling)
        if plan.empty:
            return NOTHING
        now = time.time()
        tick = time.monotonic()
        for kind, window in plan.tokens:
            if now >= window.end:
                window.roll(now)
            window.touched = tick
            if window.shared_used + window.pending >= window.limit:
                raise Refused(window, now, kind=kind)
        tightest_tokens = _tightest(plan.tokens_per_minute)
        taken: list[Window] = []
        try:
            for kind, window in plan.requests:
                window.touched = tick
                if window.leased > window.chunk // 2 + 1 and window.start <= now < window.end:
                    window.leased -= 1  # what `_take` does when no lease is due, inline
                else:
                    await self._take(window, now, kind)
                taken.append(window)
        except Refused:
            for window in taken:  # not sent after all: the lease keeps what it did not spend
                window.leased += 1
            raise
        return Admission(plan.token_windows, _tightest(plan.request_windows), tightest_tokens)

    def _plan(self, key: ClientKey, ceiling: Limits | None) -> _Plan:
        """Return (and keep) the windows a key's requests are measured against."""
        scopes: list[tuple[str, str, Limits]] = []
        if key.limits is not None:
            scopes.append(("key", f"key:{key.id}", key.limits))
        if ceiling is not None:
            scopes.append(("workspace", f"workspace:{key.workspace}", ceiling))
        now = time.time()
        tick = time.monotonic()
        tokens: list[tuple[str, Window]] = []
        requests: list[tuple[str, Window]] = []
        for kind, scope, limits in scopes:
            for measure in TOKEN_MEASURES:
                limit = getattr(limits, measure)
                if limit is not None:
                    tokens.append((kind, self._window(scope, measure, limit, now, tick)))
            if limits.requests_per_minute is not None:
                window = self._window(
                    scope, REQUESTS_PER_MINUTE, limits.requests_per_minute, now, tick
                )
                requests.append((kind, window))
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()  # keys come and go: the plans are rebuilt on their next request
        plan = self._plans[key.id] = _Plan(key.limits, ceiling, tuple(tokens), tuple(requests))
        return plan

    def _window(self, scope: str, measure: str, limit: int, now: float, tick: float) -> Window:
        window = self._windows.get((scope, measure))
        if window is None:
            window = self._windows[(scope, measure)] = Window(scope, measure, limit)
        elif window.limit != limit:
            window.limit = limit  # changed by an admin: the next lease asks with the new one
            window.exhausted = window.shared_used >= limit
        window.roll(now)
        window.touched = tick
        return window

    async def _take(self, window: Window, now: float, kind: str) -> None:
        """Spend one leased request of `window`, leasing more when needed."""
        while True:
            if window.start > now or now >= window.end:
                window.roll(now)
            if window.leased > 0:
                window.leased -= 1
                chunk = max(window.chunk, lease_chunk(window.limit))
                if (
                    window.leased < chunk // 2 + 1
                    and window.lease is None
                    and window.limit - window.shared_used >= 4 * chunk
                ):
                    self._start_lease(window)  # far from the limit: refill ahead of need
                return
            if window.exhausted:
                raise Refused(window, now, kind=kind)
            if window.lease is None:
                self._start_lease(window)
            assert window.lease is not None
            await asyncio.shield(window.lease)
            now = time.time()

    def _start_lease(self, window: Window) -> None:
        window.lease = asyncio.ensure_future(self._lease(window))

    async def _lease(self, window: Window) -> None:
        start = window.start
        tick = time.monotonic()
        chunk = window.chunk = next_chunk(window.limit, window.chunk, tick - window.leased_at)
        window.leased_at = tick
        try:
            granted, used = await repository.lease(
                self.engine,
                scope=window.scope,
                measure=window.measure,
                start=start,
                end=window.end,
                chunk=chunk,
                limit=window.limit,
            )
            self._back_online()
        except Exception as exc:
            # What this replica last knew of the window (its own leases included) stands in for
            # the shared count: one replica stays exact; N replicas may each allow the rest.
            self._gone_offline(exc)
            granted = max(0, min(chunk, window.limit - window.shared_used))
            used = window.shared_used + granted
        finally:
            window.lease = None
        if window.start != start:
            return  # the window rolled over meanwhile: this grant belongs to the old one
        window.shared_used = max(window.shared_used, used)
        if granted:
            window.leased += granted
            metrics.limit_leases(window.measure).inc()
        else:
            window.exhausted = True

    # -- writing tokens and reading what others counted ----------------------------------------

    async def sync(self) -> None:
        """Write the tokens counted here and read what every replica counted, in one trip."""
        now = time.time()
        tick = time.monotonic()
        writes: list[tuple[Window, int]] = []
        reads: list[Window] = []
        for window in list(self._windows.values()):
            if window.measure == REQUESTS_PER_MINUTE or now >= window.end:
                continue
            if window.pending:
                writes.append((window, window.pending))
            elif tick - window.touched < max(60.0, 10 * self.sync_s):
                reads.append(window)
        if writes or reads:
            try:
                used = await repository.add_and_read(
                    self.engine,
                    adds=[(w.scope, w.measure, w.start, w.end, n) for w, n in writes],
                    reads=[(w.scope, w.measure, w.start) for w in reads],
                )
            except Exception as exc:
                self._gone_offline(exc)
                return
            self._back_online()
            for window, written in writes:
                window.pending -= written
                window.shared_used = used.get((window.scope, window.measure, window.start), 0)
            for window in reads:
                window.shared_used = used.get(
                    (window.scope, window.measure, window.start), window.shared_used
                )
        if tick - self._last_purge > 600:
            self._last_purge = tick
            with contextlib.suppress(Exception):
                await repository.purge_counters(self.engine, before=int(now) - 3600)

    def _gone_offline(self, exc: BaseException) -> None:
        if self._offline_since is None:
            self._offline_since = time.monotonic()
            log.error(
                "limit counters unreachable (%s): limits are enforced per replica until they "
                "are back",
                exc,
            )

    def _back_online(self) -> None:
        if self._offline_since is not None:
            log.warning(
                "limit counters reachable again after %.1fs",
                time.monotonic() - self._offline_since,
            )
            self._offline_since = None

    async def tick(self) -> None:
        """Sync the counters (the database being unreachable is handled in `sync`)."""
        await self.sync()
