"""How long the request log keeps rows, and how it stays bounded: one partition per UTC day.

Why partitions rather than deleting old rows: the log grows with the traffic (every client
request is one row, possibly millions a day), and it is written all the time. Deleting a day's
rows means scanning them, writing a dead tuple for each, and leaving vacuum to reclaim the space
and clean the four indexes, all on the table the writer appends to. A day in a partition of its
own goes with one `DROP TABLE`: no scan, no dead tuples, no index bloat, the same cost for a
thousand rows as for a hundred million. Queries keep working on the parent, and a time filter
only reads the days it needs (partition pruning).

The purge (`purge`) runs in the gateway's housekeeping round, which one replica at a time leads
(a session advisory lock); it is idempotent anyway (`DROP ... IF EXISTS`, a `DELETE` by time),
so two replicas running it at once would only repeat each other. It drops every day that ends
before the cutoff (now minus `MODELYARD_GATEWAY_REQUEST_LOG_RETENTION_DAYS`), then deletes the
rows older than the cutoff from the one day that straddles it (found through a BRIN index on
`at`): what remains is exactly what retention allows, never less. Its DDL waits at most a few
seconds for locks (a long export holding the table), and then tries again next round.

Partitions are made by the writer before it writes into a day it has not seen (each replica,
under a transaction advisory lock, `CREATE TABLE IF NOT EXISTS`), and by the purge for the next
days, so a day's first write normally finds its partition ready.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard_gateway.settings import GatewaySettings

_EPOCH = date(1970, 1, 1)
_PARTITION = re.compile(r"^request_log_p(\d{8})$")
# pg_advisory_xact_lock key of partition creation (any constant; one per purpose).
_PARTITION_LOCK = 0x6D79_726C_0001
DAYS_AHEAD = 2
LOCK_TIMEOUT = "3s"


def day_of(day_number: int) -> date:
    """Return the date of a day number (days since 1970-01-01)."""
    return _EPOCH + timedelta(days=day_number)


def partition_name(day: date) -> str:
    """Return the name of the partition holding `day`'s requests."""
    return f"request_log_p{day:%Y%m%d}"


async def ensure_partitions(engine: AsyncEngine, *, days: Iterable[int | date]) -> None:
    """Make sure the partitions of these days (dates, or day numbers since 1970) exist."""
    wanted = sorted({d if isinstance(d, date) else day_of(d) for d in days})
    if not wanted:
        return
    async with engine.begin() as conn:
        # Replicas making the same day at once would race in CREATE ... IF NOT EXISTS.
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PARTITION_LOCK})
        for day in wanted:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            end = start + timedelta(days=1)
            await conn.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS gateway.{partition_name(day)} PARTITION OF"
                    f" gateway.request_log FOR VALUES FROM ('{start.isoformat()}')"
                    f" TO ('{end.isoformat()}')"
                )
            )


@dataclass(frozen=True, slots=True)
class Purged:
    """What one purge removed."""

    partitions: int
    rows: int


async def partition_days(engine: AsyncEngine) -> list[date]:
    """Return the days that have a partition, oldest first."""
    async with engine.connect() as conn:
        names = await conn.scalars(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'gateway.request_log'::regclass"
            )
        )
        days = []
        for name in names:
            found = _PARTITION.match(name)
            if found:
                days.append(datetime.strptime(found.group(1), "%Y%m%d").date())
    return sorted(days)


async def purge(engine: AsyncEngine, *, retention_days: int, now: datetime | None = None) -> Purged:
    """Remove every request older than the retention; return how many partitions and rows went.

    Also makes the partitions of the next days, so writes rarely have to.
    """
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    dropped = 0
    for day in await partition_days(engine):
        if day + timedelta(days=1) <= cutoff.date():
            async with engine.begin() as conn:
                await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                await conn.execute(text(f"DROP TABLE IF EXISTS gateway.{partition_name(day)}"))
            dropped += 1
    async with engine.begin() as conn:
        # After the drops only the day straddling the cutoff can hold older rows.
        await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        result = await conn.execute(
            text("DELETE FROM gateway.request_log WHERE at < :cutoff"), {"cutoff": cutoff}
        )
        rows = int(getattr(result, "rowcount", 0) or 0)
    today = now.date()
    await ensure_partitions(engine, days=[today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)])
    return Purged(dropped, rows)


def request_log_purge(
    engine: AsyncEngine, settings: GatewaySettings
) -> Callable[[], Awaitable[int]]:
    """Return the housekeeping job that purges the request log; it returns the rows removed."""

    async def job() -> int:
        purged = await purge(engine, retention_days=settings.request_log_retention_days)
        return purged.rows

    return job
