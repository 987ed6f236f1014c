"""The shared engine: no ping on a busy connection, an idle one replaced after a restart;
the pool warmed at start; reads in autocommit; a lone write without BEGIN and COMMIT;
JSON columns read as the standard library reads them.

Runs a private PostgreSQL (so it can be restarted).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.db import (
    alone,
    json_from_database,
    make_engine,
    make_read_sessionmaker,
    make_sessionmaker,
    warm_pool,
)
from modelyard_testkit.servers import PrivatePostgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().start()
    yield server
    server.close()


def _statements(engine: object) -> list[str]:
    """Return a list that collects every statement `engine` sends from now on."""
    sent: list[str] = []
    event.listen(
        engine.sync_engine,  # type: ignore[attr-defined]
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: sent.append(statement),
    )
    return sent


async def _backend_pid(engine: object) -> int:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def _count_pings(engine: object) -> list[object]:
    """Return a list that gets an item for each ping `engine` sends from now on."""
    dialect = engine.sync_engine.dialect  # type: ignore[attr-defined]
    pings: list[object] = []
    ping = dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return bool(ping(dbapi_connection))

    dialect.do_ping = counted
    return pings


async def _empty_table(engine: object, declaration: str) -> None:
    """Create the table `declaration` describes ("name (columns)") if need be, and empty it."""
    name = declaration.split(" ", 1)[0]
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(text(f"CREATE TABLE IF NOT EXISTS {declaration}"))
        await conn.execute(text(f"TRUNCATE {name}"))


@pytest.mark.parametrize(("idle_ping_after_s", "pinged"), [(5.0, False), (0.0, True)])
async def test_a_busy_connection_is_not_pinged(
    postgres: PrivatePostgres, idle_ping_after_s: float, pinged: bool
) -> None:
    engine = make_engine(postgres.admin_url, pool_size=1, idle_ping_after_s=idle_ping_after_s)
    pings = _count_pings(engine)
    try:
        first = await _backend_pid(engine)
        for _ in range(5):
            assert await _backend_pid(engine) == first  # the same connection, reused at once
        # asyncpg's ping is a transaction of its own (BEGIN, a query, ROLLBACK): a connection
        # back in use within the idle limit goes without one.
        assert bool(pings) is pinged
    finally:
        await engine.dispose()


async def test_an_idle_connection_is_replaced_after_a_restart(postgres: PrivatePostgres) -> None:
    engine = make_engine(postgres.admin_url, pool_size=1, idle_ping_after_s=0.2)
    try:
        before = await _backend_pid(engine)
        await asyncio.to_thread(postgres.restart)
        await asyncio.sleep(0.3)
        # The pooled connection died with the server: the ping at checkout finds it gone and
        # the pool connects anew, so the request itself never sees the restart.
        assert await _backend_pid(engine) != before
    finally:
        await engine.dispose()


async def test_a_busy_connection_after_a_restart_fails_once_then_the_pool_recovers(
    postgres: PrivatePostgres,
) -> None:
    engine = make_engine(postgres.admin_url, pool_size=2, idle_ping_after_s=60)
    try:
        await _backend_pid(engine)
        await asyncio.to_thread(postgres.restart)
        with pytest.raises(DBAPIError):
            await _backend_pid(engine)
        await _backend_pid(engine)  # the disconnect invalidated the pool: a fresh connection
    finally:
        await engine.dispose()


async def test_warming_opens_the_pool_and_leaves_nothing_behind(
    postgres: PrivatePostgres,
) -> None:
    engine = make_engine(postgres.admin_url, pool_size=3)
    sessions = make_sessionmaker(engine)
    await _empty_table(engine, "warm_probe (n int)")
    warmed: list[int] = []

    async def hot(session: AsyncSession) -> None:
        await session.execute(text("INSERT INTO warm_probe VALUES (1)"))
        warmed.append(int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()))

    try:
        assert await warm_pool(engine, sessions, hot) == 3
        assert len(set(warmed)) == 3  # each pooled connection ran the hot statements
        assert engine.pool.checkedin() == 3  # type: ignore[attr-defined]
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM warm_probe"))).scalar_one()
        assert rows == 0
    finally:
        await engine.dispose()


async def test_a_read_session_runs_each_statement_in_its_own_transaction(
    postgres: PrivatePostgres,
) -> None:
    engine = make_engine(postgres.admin_url, pool_size=1)
    sent = _statements(engine)
    try:
        async with make_read_sessionmaker(engine)() as session:
            first = (await session.execute(text("SELECT pg_current_xact_id()"))).scalar_one()
            second = (await session.execute(text("SELECT pg_current_xact_id()"))).scalar_one()
            await session.commit()
        assert first != second
        async with make_sessionmaker(engine)() as session:
            first = (await session.execute(text("SELECT pg_current_xact_id()"))).scalar_one()
            second = (await session.execute(text("SELECT pg_current_xact_id()"))).scalar_one()
            await session.rollback()
        assert first == second  # the ordinary session still owns one transaction
        assert len(sent) == 4
    finally:
        await engine.dispose()


async def _visible(engine: object, table: str) -> int:
    """Return how many rows of `table` another connection sees (committed rows only)."""
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_a_lone_write_commits_with_its_statement_and_nothing_else_changes(
    postgres: PrivatePostgres,
) -> None:
    engine = make_engine(postgres.admin_url, pool_size=2)
    sessions = make_sessionmaker(engine)
    await _empty_table(engine, "lone_probe (n int UNIQUE)")
    insert = text("INSERT INTO lone_probe VALUES (:n)")
    try:
        # A session's first statement, run alone: committed as it runs (no BEGIN, no COMMIT).
        async with sessions() as session:
            assert await alone(session)
            await session.execute(insert, {"n": 1})
            assert await _visible(engine, "lone_probe") == 1
            await session.commit()
        # A broken constraint run alone writes nothing, and the session rolls back as usual.
        async with sessions() as session:
            assert await alone(session)
            with pytest.raises(IntegrityError):
                await session.execute(insert, {"n": 1})
            await session.rollback()
        assert await _visible(engine, "lone_probe") == 1
        # A session that already began keeps its transaction: nothing is seen before COMMIT.
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            assert not await alone(session)
            await session.execute(insert, {"n": 2})
            assert await _visible(engine, "lone_probe") == 1
            await session.rollback()
        assert await _visible(engine, "lone_probe") == 1
        # A session bound to a connection (the pool's warm-up) stays in its transaction, so
        # the warming write is rolled back with it.
        async with engine.connect() as conn:
            transaction = await conn.begin()
            async with sessions(bind=conn) as session:
                assert not await alone(session)
                await session.execute(insert, {"n": 3})
            await transaction.rollback()
        assert await _visible(engine, "lone_probe") == 1
        # The connections went back to the pool transactional again: two statements, one
        # transaction.
        for _ in range(2):
            async with sessions() as session:
                first = (await session.execute(text("SELECT pg_current_xact_id()"))).scalar_one()
                second = (await session.execute(text("SELECT pg_current_xact_id()"))).scalar_one()
                await session.rollback()
            assert first == second
    finally:
        await engine.dispose()


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@given(value=_JSON)
@settings(max_examples=500, deadline=None)
def test_json_columns_read_exactly_as_the_standard_library_reads_them(value: object) -> None:
    text_value = json.dumps(value)
    decoded = json_from_database(text_value)
    assert decoded == json.loads(text_value)
    assert repr(decoded) == repr(json.loads(text_value))  # 10**30 stays an int, 1.0 a float


@pytest.mark.parametrize(
    "raw", ['{"n": 123456789012345678901234567890}', '{"n": 1e400}', "[-0.0, 1.5e308]"]
)
def test_json_orjson_would_read_otherwise_is_read_by_the_standard_library(raw: str) -> None:
    assert repr(json_from_database(raw)) == repr(json.loads(raw))


async def test_jsonb_values_come_back_as_stored(postgres: PrivatePostgres) -> None:
    engine = make_engine(postgres.admin_url, pool_size=1)
    stored = {"big": 10**30, "ratio": 0.1, "nested": {"list": [1, "two", None, True]}}
    try:
        async with engine.connect() as conn:
            got = await conn.scalar(
                text("SELECT CAST(:v AS jsonb)").bindparams(bindparam("v", type_=JSONB)),
                {"v": stored},
            )
        assert got == stored
        assert type(got["big"]) is int
    finally:
        await engine.dispose()
