"""Async SQLAlchemy: engine, the request-scoped session that owns the transaction, migrations."""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request
from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, event, func, select
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    """Return a new random UUID for a row."""
    return uuid.uuid4()


def schema_metadata(schema: str) -> MetaData:
    """Return a MetaData bound to one service's Postgres schema."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow
    )


class NamedInWorkspace:
    """An id, the workspace the row belongs to, and a name (first in the table).

    A table whose names are unique in their workspace declares the constraint itself.
    """

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id, sort_order=-1)
    workspace: Mapped[str] = mapped_column(String(200), index=True, sort_order=-1)
    name: Mapped[str] = mapped_column(String(200), sort_order=-1)


Row = TypeVar("Row", bound=DeclarativeBase)


async def workspace_row(
    session: AsyncSession,
    table: type[Row],
    *,
    workspace: str,
    row_id: uuid.UUID,
    for_update: bool = False,
) -> Row | None:
    """Return the workspace's `table` row with this id (None if it has none), optionally
    locked until the transaction ends; `table` has `id` and `workspace` columns."""
    columns: Any = table  # mypy sees no columns on a type variable's class
    stmt = select(table).where(columns.workspace == workspace, columns.id == row_id)
    if for_update:
        stmt = stmt.with_for_update()
    row: Row | None = await session.scalar(stmt)
    return row


class UsageCountersMixin:
    """Gateway traffic of one model on one day: requests, errors and tokens."""

    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)


def timestamp_columns() -> list[Column[datetime]]:
    """Return the columns `TimestampMixin` maps, for a migration's `create_table`."""
    return [
        Column(name, DateTime(timezone=True), server_default=func.now(), nullable=False)
        for name in ("created_at", "updated_at")
    ]


# What a database error may quote of the caller's values: the value PostgreSQL quotes at the end
# of a data error ('invalid input syntax for type uuid: "..."'), and the argument asyncpg could
# not encode ("invalid input for query argument $1: '...' (...)").
_QUOTED_VALUE = re.compile(r': ".*"$', re.DOTALL)
_QUERY_ARGUMENT = re.compile(r"(query argument \$\d+):.*", re.DOTALL)
WITHHELD = "(values withheld from logs)"


def _scrub_text(text: str, *, data_error: bool) -> str:
    text = _QUERY_ARGUMENT.sub(rf"\1: {WITHHELD}", text)
    if data_error:
        # Only the first line: SQLAlchemy's own lines ([SQL: ...]) follow in some messages.
        first, sep, rest = text.partition("\n")
        text = _QUOTED_VALUE.sub(f": {WITHHELD}", first) + sep + rest
    return text


def _scrub_args(error: BaseException, *, data_error: bool) -> bool:
    """Scrub `error`'s message in place; return whether it quoted a query argument."""
    if not error.args or not isinstance(error.args[0], str):
        return False
    first = error.args[0]
    error.args = (_scrub_text(first, data_error=data_error), *error.args[1:])
    return bool(_QUERY_ARGUMENT.search(first))


def redact_database_error(context: ExceptionContext) -> None:
    """Strip the caller's values from a database error before anything can log it.

    SQL parameters are hidden by the engine (`hide_parameters`); what remains is the server's
    and the driver's own text: `DETAIL:  Failing row contains (...)` or `Key (name)=(...)`
    lists values of the row (sealed tokens, passwords), a data error quotes the refused value,
    and a parameter the driver cannot encode is quoted with its codec's error chained below.
    The error keeps its type, SQLSTATE and constraint name, what code and operators act on.
    """
    sqlstate = getattr(context.original_exception, "sqlstate", None)
    data_error = isinstance(sqlstate, str) and sqlstate.startswith("22")
    seen: set[int] = set()
    error: BaseException | None = context.original_exception
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "detail", None):
            with contextlib.suppress(AttributeError):  # a read-only detail: nothing to strip
                error.detail = WITHHELD  # type: ignore[attr-defined]
        if _scrub_args(error, data_error=data_error):
            # What lies below is the codec's own error about the value: not kept.
            error.__cause__ = None
            error.__context__ = None
            error.__suppress_context__ = True
            break
        error = error.__cause__ or error.__context__
    if context.sqlalchemy_exception is not None:
        _scrub_args(context.sqlalchemy_exception, data_error=data_error)


# A pooled connection idle longer than this is pinged before use; a busy one is not.
IDLE_PING_AFTER_S = 5.0


def ping_idle_connections(engine: AsyncEngine, *, after_s: float = IDLE_PING_AFTER_S) -> None:
    """Ping a connection at checkout only when it sat idle in the pool longer than `after_s`.

    SQLAlchemy's `pool_pre_ping` pings every checkout, and asyncpg's ping is a transaction of its
    own (BEGIN, an empty query, ROLLBACK): three round trips before each request's first
    statement. A connection in steady use needs none; one that sat idle (across a database
    restart, a firewall's idle cut) is pinged, and a dead one is replaced before the request
    sees it. A restart under load fails the statements in flight once: SQLAlchemy sees the
    disconnect and invalidates the whole pool, so the next checkouts connect anew.
    """
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect

    def on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    def on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since <= after_s:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool replaces the connection and checks out another
            raise DisconnectionError("pooled connection is gone") from exc

    event.listen(sync_engine, "checkin", on_checkin)
    event.listen(sync_engine, "checkout", on_checkout)


# A number of 19 digits or more may not fit orjson's 64-bit integers (it would read a float).
# Found by mapping every digit to "0" and anything else to " " (a regular expression scanned
# the text three times slower than the standard library parses it, ten times orjson).
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_NUMBER = b"0" * 19


def json_from_database(text: str) -> Any:
    """Return the value of a JSON(B) column's text: `json.loads`'s answer, at orjson's speed.

    A page of 50 models decodes 100 JSONB values; with the standard library that was a twelfth
    of a list request's CPU. Where orjson would answer otherwise (an integer past 64 bits read
    as a float, a number past a double's range refused) the standard library reads it.
    """
    if _LONG_NUMBER not in text.encode().translate(_DIGITS):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    idle_ping_after_s: float = IDLE_PING_AFTER_S,
    **kwargs: Any,
) -> AsyncEngine:
    """Return an asyncpg engine whose pooled connections are pinged only after an idle spell.

    Its errors never carry SQL parameters or row values (see `redact_database_error`): a
    failed write of a sealed token must not put the token in a log. JSON columns are read with
    `json_from_database`.
    """
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        hide_parameters=True,
        json_deserializer=json_from_database,
        **kwargs,
    )
    event.listen(engine.sync_engine, "handle_error", redact_database_error)
    ping_idle_connections(engine, after_s=idle_ping_after_s)
    return engine


async def warm_pool(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    warm: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> int:
    """Open every connection of the pool and run `warm` on each; return how many.

    A cold pool makes the first requests connect (TCP, auth, asyncpg's type introspection) and
    prepare each statement on each connection while clients wait. Warmed at start, before the
    service listens, the first second runs as fast as any other. `warm` runs the hot
    statements in a session bound to one connection, inside a transaction rolled back after:
    a warming insert leaves nothing behind, and its NOTIFY is never sent.
    """
    size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
    async with contextlib.AsyncExitStack() as stack:
        connections = [await stack.enter_async_context(engine.connect()) for _ in range(size)]
        if warm is not None:
            for connection in connections:
                transaction = await connection.begin()
                async with sessionmaker(bind=connection) as session:
                    await warm(session)
                await transaction.rollback()
    return size


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session factory whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session: commit when the handler succeeds, roll back otherwise."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function": the commit happens before the response is sent, so a client never gets a 2xx
# for a transaction that then fails to commit, nor reads ahead of its own write.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def make_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session factory for reads: the same pool, each statement in autocommit.

    A read in a transaction pays two round trips more (BEGIN, COMMIT) and sees no more than
    autocommit does: under READ COMMITTED every statement takes its own snapshot either way.
    """
    return make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield a session for a request that only reads (see `make_read_sessionmaker`).

    An app without a read factory reads through its ordinary sessions.
    """
    factory: async_sessionmaker[AsyncSession] = (
        getattr(request.app.state, "read_sessionmaker", None) or request.app.state.sessionmaker
    )
    async with factory() as session:
        yield session


# For routes that only read: never for one that writes (each statement would commit alone).
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]


async def alone(session: AsyncSession) -> bool:
    """Let the session's next statement commit on its own if the session has not begun yet.

    Through a transaction a single statement costs three round trips (BEGIN, it, COMMIT). A
    statement that is atomic on its own (one `RecordedInsert`: the row, its history, its event)
    and is all the request writes needs no BEGIN: its connection is taken in autocommit, and
    the request's commit has nothing left to do. Only for a request's one and only write: any
    statement after it in the session commits alone too. A session already in a transaction (an
    idempotency record read first, a lock, a check), or bound to a connection (the pool's
    warm-up, rolled back), keeps its transaction. Returns whether the session runs alone.
    """
    if session.in_transaction() or not isinstance(session.bind, AsyncEngine):
        return False
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return True


class Base(DeclarativeBase):
    """Marker base; each service declares its own base bound to its schema."""

    __abstract__ = True


# Alembic's `script_location` of every service: one `env.py`, one revision template.
MIGRATION_ENV = Path(__file__).parent / "migration_env"


def alembic_config(
    migrations: Path, database_url: str, schema: str, metadata: MetaData | None = None
) -> Any:
    """Return an Alembic Config for one service's migrations (its `migrations/versions/`).

    `metadata` (the service's tables) matters only to autogenerate a revision.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATION_ENV).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(migrations / "versions").replace("%", "%%"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["schema"] = schema
    cfg.attributes["target_metadata"] = metadata
    return cfg


def upgrade_head(migrations: Path, database_url: str, schema: str) -> None:
    """Apply every migration of one service (creates its schema first)."""
    from alembic import command

    command.upgrade(alembic_config(migrations, database_url, schema), "head")


def run_alembic_env() -> None:
    """Body of the migrations' `env.py`: run them online with asyncpg, in the Config's schema."""
    import asyncio

    from alembic import context
    from sqlalchemy import text
    from sqlalchemy.engine import Connection

    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    schema: str = config.attributes["schema"]
    target_metadata: MetaData | None = config.attributes.get("target_metadata")

    def do_run(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=False,
            compare_type=True,
        )
        with context.begin_transaction():
            # Replicas starting together must not race each other's migrations.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, hide_parameters=True)
        event.listen(engine.sync_engine, "handle_error", redact_database_error)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run())
