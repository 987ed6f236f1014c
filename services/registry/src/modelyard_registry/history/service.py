"""Recording and reading the per-resource audit trail, and emitting the matching event."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.errors import ConflictError
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.history import (
    Changes,
    RecordedInsert,
    entry_values,
    history_rows,
    is_unique_violation,
    record,
)
from modelyard_common.outbox import enqueue
from modelyard_common.pagination import PageParams
from modelyard_registry.db import HistoryEntry, OutboxEvent

EVENT_SOURCE = "modelyard/registry"


class Revisioned(Protocol):
    """A row whose changes count revisions (behind its ETag) and say who made them, when."""

    revision: int
    updated_by: str
    updated_at: datetime


def authorship(principal: Principal) -> dict[str, str]:
    """Return the fields of a row the principal creates: its workspace, its author, its editor."""
    return {
        "workspace": principal.workspace,
        "created_by": principal.sub,
        "updated_by": principal.sub,
    }


def new_revision(row: Revisioned, principal: Principal) -> None:
    """Count a change to `row` by the principal: its next revision, who made it and when."""
    row.revision += 1
    row.updated_by = principal.sub
    row.updated_at = utcnow()


def registry_event(
    *,
    principal: Principal,
    event_type: str,
    subject: uuid.UUID,
    data: BaseModel | dict[str, Any],
) -> CloudEvent:
    """Return a registry event about `subject`, its data naming the workspace and the actor."""
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    return new_event(
        type=event_type,
        source=EVENT_SOURCE,
        subject=str(subject),
        data={**payload, "workspace": principal.workspace, "actor": principal.sub},
    )


async def emit(
    session: AsyncSession,
    *,
    principal: Principal,
    event_type: str,
    subject: uuid.UUID,
    data: BaseModel | dict[str, Any],
) -> None:
    """Put a registry event in the outbox, in the caller's transaction."""
    event = registry_event(principal=principal, event_type=event_type, subject=subject, data=data)
    await enqueue(session, OutboxEvent, event)


def recorded_insert(table: type[Any]) -> RecordedInsert:
    """Return the one statement writing a new `table` row, its history entry and its event."""
    return RecordedInsert(table, HistoryEntry, OutboxEvent)


async def insert_created(
    session: AsyncSession,
    statement: RecordedInsert,
    *,
    principal: Principal,
    resource_type: str,
    row: dict[str, Any],
    changes: Changes,
    event_data: BaseModel,
    conflict: str,
) -> None:
    """Write a new row with its `created` history and `registry.<type>.created` event.

    One statement, one round trip; a name already taken (the table's unique index) is a 409
    saying `conflict`, with nothing written.
    """
    resource_id = row["id"]
    entry = entry_values(
        principal=principal,
        resource_type=resource_type,
        resource_id=resource_id,
        action="created",
        changes=changes,
    )
    event = registry_event(
        principal=principal,
        event_type=f"registry.{resource_type}.created",
        subject=resource_id,
        data=event_data,
    )
    try:
        await statement.execute(session, row=row, entry=entry, event=event)
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise ConflictError(conflict) from exc
        raise


async def record_change(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_type: str,
    resource_id: uuid.UUID,
    action: str,
    changes: Changes,
    event_data: BaseModel | dict[str, Any] | None = None,
) -> None:
    """Add a history entry to the caller's transaction; with `event_data`, its event too.

    The event is `registry.<type>.<action>`; a change announced otherwise (or not at all)
    leaves `event_data` out.
    """
    record(
        session,
        HistoryEntry,
        principal=principal,
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        changes=changes,
    )
    if event_data is not None:
        await emit(
            session,
            principal=principal,
            event_type=f"registry.{resource_type}.{action}",
            subject=resource_id,
            data=event_data,
        )


async def list_history(
    session: AsyncSession, *, workspace: str, resource_id: uuid.UUID, params: PageParams
) -> tuple[list[HistoryEntry], str | None]:
    """Return one page of a resource's history, oldest first by default."""
    return await history_rows(
        session, HistoryEntry, workspace=workspace, resource_id=resource_id, params=params
    )


async def flush_unique(session: AsyncSession, message: str) -> None:
    """Flush; a unique-constraint race with a concurrent request becomes a 409."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise ConflictError(message) from exc
        raise
