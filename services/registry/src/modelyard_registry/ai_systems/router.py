"""HTTP routes of AI systems: thin, one service call each."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import JSONResponse

from modelyard_common.auth import Admin, Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.errors import problem_responses
from modelyard_common.http import IdempotencyKey, IfMatch, created_response, run_idempotent
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_registry.ai_systems import service
from modelyard_registry.ai_systems.repository import SORT_COLUMNS, SystemFilters
from modelyard_registry.ai_systems.schemas import (
    AISystemCreate,
    AISystemRead,
    AISystemUpdate,
    RiskLevel,
    SystemStatus,
)
from modelyard_registry.db import IdempotencyRecord
from modelyard_registry.history.schemas import HistoryEntryRead
from modelyard_registry.history.service import list_history

router = APIRouter(prefix="/v1", tags=["systems"])

SystemPage = Annotated[PageParams, Depends(page_params("name", list(SORT_COLUMNS)))]
HistoryPage = Annotated[PageParams, Depends(page_params("at", ["at"]))]
AUTH_ERRORS = (401, 403)


def system_filters(
    q: Annotated[str | None, Query(max_length=200, description="Full-text search.")] = None,
    status: SystemStatus | None = None,
    risk_level: RiskLevel | None = None,
    tag: Annotated[list[str] | None, Query(description="Any of these tags.")] = None,
    owner: str | None = None,
    archived: Annotated[
        bool | None, Query(description="false (default): active only; true: archived only.")
    ] = False,
    ids: Annotated[
        list[uuid.UUID] | None, Query(max_length=200, description="Fetch these ids in one call.")
    ] = None,
) -> SystemFilters:
    return SystemFilters(
        q=q,
        status=status,
        risk_level=risk_level,
        tags=[t.lower() for t in tag or []],
        owner=owner,
        archived=None if ids else archived,
        ids=ids or [],
    )


Filters = Annotated[SystemFilters, Depends(system_filters)]


@router.get(
    "/systems",
    operation_id="list_systems",
    summary="List AI systems (filter, search, sort, paginate)",
    responses=problem_responses(*AUTH_ERRORS, 422),
)
async def list_systems(
    session: SessionDep, principal: Viewer, filters: Filters, params: SystemPage
) -> Page[AISystemRead]:
    items, cursor = await service.list_systems(
        session, principal=principal, filters=filters, params=params
    )
    return Page(items=items, next_cursor=cursor)


@router.post(
    "/systems",
    operation_id="create_system",
    summary="Register an AI system",
    status_code=status.HTTP_201_CREATED,
    response_model=AISystemRead,
    responses=problem_responses(*AUTH_ERRORS, 409, 422),
)
async def create_system(
    session: SessionDep,
    principal: Editor,
    body: AISystemCreate,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    stored = await run_idempotent(
        session,
        IdempotencyRecord,
        principal=principal,
        operation="create_system",
        key=idempotency_key,
        payload=body,
        create=lambda: service.create_system(session, principal=principal, data=body),
    )
    return created_response(stored, location=f"/v1/systems/{stored.body['id']}")


@router.get(
    "/systems/{system_id}",
    operation_id="get_system",
    summary="Get one AI system",
    responses=problem_responses(*AUTH_ERRORS, 404),
)
async def get_system(
    session: SessionDep, principal: Viewer, system_id: uuid.UUID, response: Response
) -> AISystemRead:
    read = service.to_read(
        await service.get_system(session, principal=principal, system_id=system_id)
    )
    response.headers["ETag"] = read.etag
    return read


@router.patch(
    "/systems/{system_id}",
    operation_id="update_system",
    summary="Change an AI system (send If-Match with its ETag)",
    responses=problem_responses(*AUTH_ERRORS, 404, 409, 412, 422, 428),
)
async def update_system(
    session: SessionDep,
    principal: Editor,
    system_id: uuid.UUID,
    body: AISystemUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> AISystemRead:
    read = await service.update_system(
        session, principal=principal, system_id=system_id, data=body, if_match=if_match
    )
    response.headers["ETag"] = read.etag
    return read


@router.delete(
    "/systems/{system_id}",
    operation_id="delete_system",
    summary="Delete an AI system and its links for good (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(*AUTH_ERRORS, 404),
)
async def delete_system(session: SessionDep, principal: Admin, system_id: uuid.UUID) -> None:
    await service.delete_system(session, principal=principal, system_id=system_id)


@router.post(
    "/systems/{system_id}/archive",
    operation_id="archive_system",
    summary="Archive (soft-delete) an AI system",
    responses=problem_responses(*AUTH_ERRORS, 404),
)
async def archive_system(
    session: SessionDep, principal: Editor, system_id: uuid.UUID
) -> AISystemRead:
    return await service.set_archived(
        session, principal=principal, system_id=system_id, archived=True
    )


@router.post(
    "/systems/{system_id}/unarchive",
    operation_id="unarchive_system",
    summary="Restore an archived AI system",
    responses=problem_responses(*AUTH_ERRORS, 404),
)
async def unarchive_system(
    session: SessionDep, principal: Editor, system_id: uuid.UUID
) -> AISystemRead:
    return await service.set_archived(
        session, principal=principal, system_id=system_id, archived=False
    )


@router.get(
    "/systems/{system_id}/history",
    operation_id="list_system_history",
    summary="Every change to a system, including its links",
    responses=problem_responses(*AUTH_ERRORS, 404, 422),
)
async def list_system_history(
    session: SessionDep, principal: Viewer, system_id: uuid.UUID, params: HistoryPage
) -> Page[HistoryEntryRead]:
    rows, cursor = await list_history(
        session, workspace=principal.workspace, resource_id=system_id, params=params
    )
    if not rows and params.cursor is None:
        await service.get_system(session, principal=principal, system_id=system_id)
    return Page(items=[HistoryEntryRead.model_validate(r) for r in rows], next_cursor=cursor)
