"""Recording and reading the audit trail of admin resources (in the caller's transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.pagination import Page, PageParams
from modelyard_gateway.db import HistoryEntry
from modelyard_gateway.history import repository
from modelyard_gateway.history.schemas import HistoryEntryRead

# A change as the trail records it: `{field: {"old": ..., "new": ...}}`.
Changes = dict[str, dict[str, Any]]


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> Changes:
    """Return `{field: {old, new}}` for every field whose value differs."""
    keys = list(dict.fromkeys([*before, *after]))
    return {
        key: {"old": before.get(key), "new": after.get(key)}
        for key in keys
        if before.get(key) != after.get(key)
    }


def record_change(
    session: AsyncSession,
    *,
    principal: Principal,
    resource_type: str,
    resource_id: uuid.UUID,
    action: str,
    changes: Changes,
) -> None:
    """Add an entry to the trail, in the caller's transaction (an update changing nothing adds
    none)."""
    if action == "updated" and not changes:
        return
    session.add(
        HistoryEntry(
            id=uuid.uuid4(),
            workspace=principal.workspace,
            resource_type=resource_type,
            resource_id=resource_id,
            action=action,
            actor=principal.sub,
            changes=changes,
        )
    )


async def list_history(
    session: AsyncSession, *, workspace: str, resource_id: uuid.UUID, params: PageParams
) -> Page[HistoryEntryRead]:
    """Return one page of a resource's history, oldest first by default."""
    rows, cursor = await repository.page(
        session, workspace=workspace, resource_id=resource_id, params=params
    )
    return Page(items=[HistoryEntryRead.model_validate(r) for r in rows], next_cursor=cursor)
