"""`Sorting` names a list's sort columns once: the names `sort` takes, and its cursor pages."""

from __future__ import annotations

import uuid

from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelyard_common.pagination import PageParams
from modelyard_common.sorting import Sorting
from modelyard_testkit.testing import TEST_ADMIN_DB_URL, recreate_database


class _Base(DeclarativeBase):
    pass


class Gadget(_Base):
    __tablename__ = "gadgets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column()


SORTING = Sorting({"name": Gadget.name, "size": Gadget.size}, id_column=Gadget.id)


def test_the_names_are_the_columns_in_their_order() -> None:
    assert SORTING.names == ("name", "size")


async def test_the_pages_follow_the_sort_and_the_cursor() -> None:
    url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_test_sorting")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_Base.metadata.create_all)
        async with AsyncSession(engine) as session:
            session.add_all(
                Gadget(id=uuid.uuid4(), name=name, size=size)
                for name, size in [("a", 3), ("b", 1), ("c", 2)]
            )
            await session.flush()
            first, cursor = await SORTING.page(
                session, select(Gadget), PageParams(limit=2, cursor=None, sort="-size")
            )
            rest, last = await SORTING.page(
                session, select(Gadget), PageParams(limit=2, cursor=cursor, sort="-size")
            )
        assert [g.name for g in first] == ["a", "c"]
        assert [g.name for g in rest] == ["b"]
        assert last is None
    finally:
        await engine.dispose()
