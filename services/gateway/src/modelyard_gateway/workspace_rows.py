"""What every admin resource of a workspace shares: its row by id (or 404), a name used once.

Instances, groups and keys are rows of one workspace, found by id within it; instances and
groups have names unique in it and a revision (their ETag) that each change moves on, and a
body may list only what the workspace has. The statements and their problems are written here
once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.db import workspace_row
from modelyard_common.errors import ConflictError, UnprocessableError, field_error, found
from modelyard_gateway.db import ApiKey, ModelGroup, ModelInstance, announce_config_change

Scoped = TypeVar("Scoped", ModelInstance, ModelGroup, ApiKey)
Named = TypeVar("Named", ModelInstance, ModelGroup)
Item = TypeVar("Item")

# What a problem calls a row of each table.
NOUNS: dict[type[ModelInstance | ModelGroup | ApiKey], str] = {
    ModelInstance: "instance",
    ModelGroup: "model group",
    ApiKey: "API key",
}


async def require(
    session: AsyncSession, table: type[Scoped], *, workspace: str, row_id: uuid.UUID
) -> Scoped:
    """Return the workspace's `table` row with this id (a 404 problem otherwise)."""
    row = await workspace_row(session, table, workspace=workspace, row_id=row_id)
    return found(row, f"No {NOUNS[table]} {row_id} in this workspace.")


async def ensure_name_free(
    session: AsyncSession,
    table: type[Named],
    *,
    workspace: str,
    name: str,
    other_than: uuid.UUID | None = None,
) -> None:
    """Raise a 409 problem when another `table` row of the workspace has this name."""
    stmt = select(table.id).where(table.workspace == workspace, table.name == name)
    if other_than is not None:
        stmt = stmt.where(table.id != other_than)
    if await session.scalar(stmt) is not None:
        noun = NOUNS[table]
        article = "An" if noun[0] in "aeiou" else "A"
        raise ConflictError(f"{article} {noun} named '{name}' already exists in this workspace.")


async def ensure_rename_free(session: AsyncSession, row: Named, name: str | None) -> None:
    """Raise a 409 problem when `row` is renamed to a name another row of its workspace has."""
    if name is not None and name != row.name:
        await ensure_name_free(
            session, type(row), workspace=row.workspace, name=name, other_than=row.id
        )


async def save_change(session: AsyncSession, row: Named) -> None:
    """Write a change of `row` as its next revision (a new ETag) and announce it to replicas."""
    row.revision += 1
    row.updated_at = datetime.now(UTC)
    await session.flush()
    await announce_config_change(session)


def refuse_unknown(
    field: str,
    listed: Sequence[Item],
    known: Container[Item],
    *,
    plural: str,
    describe: Callable[[Item], str],
) -> None:
    """Raise a 422 problem naming each item of the body's `field` list that is not `known`."""
    unknown = [
        field_error(
            ["body", field, i], message=f"no {describe(item)} in this workspace", type="not_found"
        )
        for i, item in enumerate(listed)
        if item not in known
    ]
    if unknown:
        raise UnprocessableError(f"Some {plural} do not exist in this workspace.", errors=unknown)
