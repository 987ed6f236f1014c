"""The use cases AI models and AI systems share: get, register, change, archive, delete, list.

Each kind builds one `Inventory` with its API view (read from the row's attributes) and tracked
fields, and adds its own rules by overriding the hooks (`on_create`, `on_update`, `on_delete`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Set
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_common.auth import Principal
from modelyard_common.db import alone, utcnow
from modelyard_common.errors import ConflictError, found
from modelyard_common.history import Changes, diff
from modelyard_common.http import check_if_match, make_etag
from modelyard_common.pagination import PageParams
from modelyard_registry.db import AIModel, AISystem
from modelyard_registry.history.service import (
    authorship,
    flush_unique,
    insert_created,
    new_revision,
    record_change,
    recorded_insert,
)
from modelyard_registry.inventory import repository
from modelyard_registry.inventory.repository import InventoryFilters, Item

Read = TypeVar("Read", bound=BaseModel)
Filters = TypeVar("Filters", bound=InventoryFilters)
Create = TypeVar("Create", bound=BaseModel)

# Each table's resource type in history and in event types (`registry.<resource>.<action>`).
RESOURCES: dict[type[AIModel] | type[AISystem], str] = {AIModel: "model", AISystem: "system"}


async def get_item(
    session: AsyncSession,
    table: type[Item],
    *,
    principal: Principal,
    item_id: uuid.UUID,
    for_update: bool = False,
) -> Item:
    """Return the principal's workspace row, or raise 404 (also for other workspaces' ids)."""
    row = await repository.get(
        session, table, workspace=principal.workspace, item_id=item_id, for_update=for_update
    )
    return found(row, f"No {RESOURCES[table]} {item_id} in this workspace.")


class Inventory(Generic[Item, Read, Filters, Create]):
    """One inventory kind's use cases; names are unique per workspace, changes are audited."""

    def __init__(
        self,
        table: type[Item],
        *,
        read: type[Read],
        tracked: Set[str],
        sort_columns: Mapping[str, InstrumentedAttribute[Any]],
        conditions: Callable[[Filters], list[ColumnElement[bool]]],
    ) -> None:
        self.table: type[Item] = table
        self.resource = RESOURCES[table]
        self.read = read
        self.tracked = tracked
        self.sort_columns = sort_columns
        self.conditions = conditions
        self.insert = recorded_insert(table)
        self.view_columns = repository.view_columns(table)
        self.view_keys = [column.key for column in self.view_columns]

    def to_read(self, row: Item) -> Read:
        """Return the API view of a row."""
        return self.read.model_validate(row, from_attributes=True)

    def row_to_read(self, row: Row[Any]) -> Read:
        """Return the API view of a row read as columns (`view_columns`), as `to_read` would."""
        values = dict(zip(self.view_keys, row, strict=True))
        values["archived"] = values["archived_at"] is not None
        values["etag"] = make_etag(values["revision"])
        return self.read.model_validate(values)

    def snapshot(self, row: Item) -> dict[str, Any]:
        """Return the tracked fields of a row as history records them."""
        return self.to_read(row).model_dump(mode="json", include=set(self.tracked))

    async def get(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        item_id: uuid.UUID,
        for_update: bool = False,
    ) -> Item:
        """Return the principal's workspace row, or raise 404."""
        return await get_item(
            session, self.table, principal=principal, item_id=item_id, for_update=for_update
        )

    def _taken(self, name: str) -> str:
        return f"A {self.resource} named {name!r} already exists in this workspace."

    async def _ensure_name_free(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        name: str,
        exclude_id: uuid.UUID | None = None,
    ) -> None:
        if await repository.name_taken(
            session, self.table, workspace=principal.workspace, name=name, exclude_id=exclude_id
        ):
            raise ConflictError(self._taken(name))

    async def on_create(self, session: AsyncSession, *, principal: Principal, body: Create) -> None:
        """Check a kind's own rules before a row is registered (none by default)."""

    async def on_update(
        self, session: AsyncSession, *, row: Item, before: dict[str, Any], delta: Changes
    ) -> Changes:
        """Return the change to record, after a kind's own rules about it (as is by default)."""
        return delta

    async def on_delete(self, session: AsyncSession, *, principal: Principal, row: Item) -> None:
        """Check or do what a kind needs before a row is deleted (nothing by default)."""

    async def create(self, session: AsyncSession, *, principal: Principal, body: Create) -> Read:
        """Return the newly registered row's view; records history and `registry.<kind>.created`.

        One statement writes the row, its history and its event; the name's uniqueness is the
        table's unique index (a taken name is a 409 with nothing written). When that statement
        is all the request does (no idempotency record, no check read before), it runs alone:
        no BEGIN and COMMIT around it. An import's creates share its transaction.
        """
        await self.on_create(session, principal=principal, body=body)
        row = self.table(**authorship(principal), **body.model_dump(mode="json"))
        values = self.insert.complete(row)
        read = self.to_read(row)
        await alone(session)
        await insert_created(
            session,
            self.insert,
            principal=principal,
            resource_type=self.resource,
            row=values,
            changes=diff({}, read.model_dump(mode="json", include=set(self.tracked))),
            event_data=read,
            conflict=self._taken(row.name),
        )
        return read

    async def update(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        item_id: uuid.UUID,
        body: BaseModel,
        if_match: str | None,
    ) -> Read:
        """Return the row's view after applying the set fields; 412 when `if_match` is stale."""
        row = await self.get(session, principal=principal, item_id=item_id, for_update=True)
        check_if_match(if_match, row.revision)
        changes = body.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        if "name" in changes:
            await self._ensure_name_free(
                session, principal=principal, name=changes["name"], exclude_id=row.id
            )
        before = self.snapshot(row)
        for field, value in changes.items():
            setattr(row, field, value)
        delta = diff(before, self.snapshot(row))
        if not delta:
            return self.to_read(row)
        delta = await self.on_update(session, row=row, before=before, delta=delta)
        return await self.save(session, principal=principal, row=row, action="updated", delta=delta)

    async def save(
        self, session: AsyncSession, *, principal: Principal, row: Item, action: str, delta: Changes
    ) -> Read:
        """Return the row's view after a new revision, recorded as `action`."""
        new_revision(row, principal)
        await flush_unique(session, self._taken(row.name))
        return await self._record(
            session, principal=principal, row=row, action=action, changes=delta
        )

    async def _record(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        row: Item,
        action: str,
        changes: Changes,
    ) -> Read:
        """Return the row's view once its history and `registry.<kind>.<action>` record it."""
        read = self.to_read(row)
        await record_change(
            session,
            principal=principal,
            resource_type=self.resource,
            resource_id=row.id,
            action=action,
            changes=changes,
            event_data=read,
        )
        return read

    async def set_archived(
        self, session: AsyncSession, *, principal: Principal, item_id: uuid.UUID, archived: bool
    ) -> Read:
        """Return the row archived (soft-deleted) or restored; repeating it changes nothing."""
        row = await self.get(session, principal=principal, item_id=item_id, for_update=True)
        if (row.archived_at is not None) == archived:
            return self.to_read(row)
        before = self.snapshot(row)
        row.archived_at = utcnow() if archived else None
        return await self.save(
            session,
            principal=principal,
            row=row,
            action="archived" if archived else "unarchived",
            delta=diff(before, self.snapshot(row)),
        )

    async def delete(
        self, session: AsyncSession, *, principal: Principal, item_id: uuid.UUID
    ) -> None:
        """Delete a row for good (after `on_delete`), recording it."""
        row = await self.get(session, principal=principal, item_id=item_id, for_update=True)
        await self.on_delete(session, principal=principal, row=row)
        await session.delete(row)
        await session.flush()
        changes = diff(self.snapshot(row), {})
        await self._record(session, principal=principal, row=row, action="deleted", changes=changes)

    async def page(
        self, session: AsyncSession, *, principal: Principal, filters: Filters, params: PageParams
    ) -> tuple[list[Read], str | None]:
        """Return one page of the workspace's rows matching the filters, and the next cursor."""
        rows, cursor = await repository.list_page(
            session,
            self.table,
            workspace=principal.workspace,
            columns=self.view_columns,
            conditions=[
                *repository.shared_conditions(self.table, filters),
                *self.conditions(filters),
            ],
            sort_columns=self.sort_columns,
            params=params,
        )
        return [self.row_to_read(row) for row in rows], cursor
