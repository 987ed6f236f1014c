"""Every SQL statement of limits: the shared window counters and the workspace's ceiling."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from modelyard_gateway.db import WorkspaceLimits

_ADD = text(
    """
    INSERT INTO gateway.limit_counters AS c (scope, measure, window_start, window_end, used)
    SELECT * FROM unnest(
        CAST(:scopes AS varchar[]), CAST(:measures AS varchar[]), CAST(:starts AS bigint[]),
        CAST(:ends AS bigint[]), CAST(:amounts AS bigint[]))
    ON CONFLICT (scope, measure, window_start) DO UPDATE SET used = c.used + EXCLUDED.used
    RETURNING scope, measure, window_start, used
    """
)

_READ = text(
    """
    SELECT c.scope, c.measure, c.window_start, c.used FROM gateway.limit_counters c
    JOIN unnest(CAST(:scopes AS varchar[]), CAST(:measures AS varchar[]),
                CAST(:starts AS bigint[])) AS w(scope, measure, window_start)
      USING (scope, measure, window_start)
    """
)

_PURGE = text(
    """
    DELETE FROM gateway.limit_counters WHERE ctid IN (
        SELECT ctid FROM gateway.limit_counters WHERE window_end < :before LIMIT 5000)
    """
)

CounterKey = tuple[str, str, int]


# Grants what is left of the window, at most `chunk` ($5); the grants of every replica together
# never pass `limit` ($6). No row comes back when nothing is left. Sent to asyncpg itself: a
# lease runs on the hot path's event loop many times a second under load, and one autocommitted
# statement (one round trip, no BEGIN/COMMIT, none of SQLAlchemy's per-execute work) costs a
# fraction of a transaction through its layers.
_LEASE_RAW = """
    INSERT INTO gateway.limit_counters AS c
        (scope, measure, window_start, window_end, used, last_grant)
    VALUES ($1, $2, $3::bigint, $4::bigint, LEAST($5::bigint, $6::bigint),
            LEAST($5::bigint, $6::bigint))
    ON CONFLICT (scope, measure, window_start) DO UPDATE
    SET used = c.used + LEAST($5::bigint, $6::bigint - c.used),
        last_grant = LEAST($5::bigint, $6::bigint - c.used)
    WHERE c.used < $6::bigint
    RETURNING last_grant, used
"""
_USED_RAW = (
    "SELECT used FROM gateway.limit_counters"
    " WHERE scope = $1 AND measure = $2 AND window_start = $3::bigint"
)


async def lease(
    engine: AsyncEngine, *, scope: str, measure: str, start: int, end: int, chunk: int, limit: int
) -> tuple[int, int]:
    """Return (granted, used in the window by every replica) after leasing up to `chunk`."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        pg = raw.driver_connection
        assert pg is not None
        # One statement, atomic on its own (autocommit): the grant and the count never part.
        row = await pg.fetchrow(_LEASE_RAW, scope, measure, start, end, chunk, limit)
        if row is not None:
            return int(row["last_grant"]), int(row["used"])
        used = await pg.fetchval(_USED_RAW, scope, measure, start)
        return 0, int(used or limit)


async def add_and_read(
    engine: AsyncEngine,
    *,
    adds: Sequence[tuple[str, str, int, int, int]],
    reads: Sequence[CounterKey],
) -> dict[CounterKey, int]:
    """Add token counts to their windows and read others; return each window's `used`."""
    used: dict[CounterKey, int] = {}
    async with engine.begin() as conn:
        if adds:
            # One order for every replica: two adding the same windows never deadlock.
            ordered = sorted(adds)
            result = await conn.execute(
                _ADD,
                {
                    "scopes": [a[0] for a in ordered],
                    "measures": [a[1] for a in ordered],
                    "starts": [a[2] for a in ordered],
                    "ends": [a[3] for a in ordered],
                    "amounts": [a[4] for a in ordered],
                },
            )
            used.update({(r.scope, r.measure, r.window_start): int(r.used) for r in result})
        if reads:
            result = await conn.execute(
                _READ,
                {
                    "scopes": [r[0] for r in reads],
                    "measures": [r[1] for r in reads],
                    "starts": [r[2] for r in reads],
                },
            )
            used.update({(r.scope, r.measure, r.window_start): int(r.used) for r in result})
    return used


async def purge_counters(engine: AsyncEngine, *, before: int) -> int:
    """Delete counters of windows that ended before `before` (in batches); return how many."""
    deleted = 0
    while True:
        async with engine.begin() as conn:
            count = (await conn.execute(_PURGE, {"before": before})).rowcount
        deleted += count
        if count < 5000:
            return deleted


async def workspace_limits(
    session: AsyncSession, *, workspace: str, lock: bool = False
) -> WorkspaceLimits | None:
    """Return the workspace's ceiling row (locked for a change), or None when it has none."""
    return await session.get(WorkspaceLimits, workspace, with_for_update=lock)
