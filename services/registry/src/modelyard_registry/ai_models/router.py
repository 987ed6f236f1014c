"""HTTP routes of AI models: thin, one service call each."""

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
from modelyard_registry.ai_models import service
from modelyard_registry.ai_models.repository import SORT_COLUMNS, ModelFilters
from modelyard_registry.ai_models.schemas import (
    LEARNING_TYPE_DEFINITIONS,
    AIModelCreate,
    AIModelRead,
    AIModelUpdate,
    LearningType,
    LearningTypeRead,
    ModelSystemLinkRead,
)
from modelyard_registry.approvals.schemas import ApprovalState
from modelyard_registry.db import IdempotencyRecord
from modelyard_registry.history.schemas import HistoryEntryRead
from modelyard_registry.history.service import list_history

router = APIRouter(prefix="/v1", tags=["models"])

ModelPage = Annotated[PageParams, Depends(page_params("name", list(SORT_COLUMNS)))]
HistoryPage = Annotated[PageParams, Depends(page_params("at", ["at"]))]
AUTH_ERRORS = (401, 403)


def model_filters(
    q: Annotated[str | None, Query(max_length=200, description="Full-text search.")] = None,
    learning_type: LearningType | None = None,
    tag: Annotated[list[str] | None, Query(description="Any of these tags.")] = None,
    provider: str | None = None,
    archived: Annotated[
        bool | None, Query(description="false (default): active only; true: archived only.")
    ] = False,
    ids: Annotated[
        list[uuid.UUID] | None, Query(max_length=200, description="Fetch these ids in one call.")
    ] = None,
    approval: Annotated[
        list[ApprovalState] | None, Query(description="Any of these approval states.")
    ] = None,
) -> ModelFilters:
    return ModelFilters(
        q=q,
        learning_type=learning_type,
        tags=[t.lower() for t in tag or []],
        provider=provider,
        archived=None if ids else archived,
        ids=ids or [],
        approval=[a.value for a in approval or []],
    )


Filters = Annotated[ModelFilters, Depends(model_filters)]


@router.get(
    "/learning-types",
    operation_id="list_learning_types",
    summary="The learning types a model can have, each with its definition",
    tags=["reference"],
)
async def list_learning_types() -> list[LearningTypeRead]:
    return [
        LearningTypeRead(id=kind, label=label, definition=definition)
        for kind, (label, definition) in LEARNING_TYPE_DEFINITIONS.items()
    ]


@router.get(
    "/models",
    operation_id="list_models",
    summary="List AI models (filter, search, sort, paginate)",
    responses=problem_responses(*AUTH_ERRORS, 422),
)
async def list_models(
    session: SessionDep, principal: Viewer, filters: Filters, params: ModelPage
) -> Page[AIModelRead]:
    items, cursor = await service.list_models(
        session, principal=principal, filters=filters, params=params
    )
    return Page(items=items, next_cursor=cursor)


@router.post(
    "/models",
    operation_id="create_model",
    summary="Register an AI model",
    status_code=status.HTTP_201_CREATED,
    response_model=AIModelRead,
    responses=problem_responses(*AUTH_ERRORS, 409, 422),
)
async def create_model(
    session: SessionDep,
    principal: Editor,
    body: AIModelCreate,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    stored = await run_idempotent(
        session,
        IdempotencyRecord,
        principal=principal,
        operation="create_model",
        key=idempotency_key,
        payload=body,
        create=lambda: service.create_model(session, principal=principal, data=body),
    )
    return created_response(stored, location=f"/v1/models/{stored.body['id']}")


@router.get(
    "/models/{model_id}",
    operation_id="get_model",
    summary="Get one AI model",
    responses=problem_responses(*AUTH_ERRORS, 404),
)
async def get_model(
    session: SessionDep, principal: Viewer, model_id: uuid.UUID, response: Response
) -> AIModelRead:
    read = service.to_read(await service.get_model(session, principal=principal, model_id=model_id))
    response.headers["ETag"] = read.etag
    return read


@router.patch(
    "/models/{model_id}",
    operation_id="update_model",
    summary="Change an AI model (send If-Match with its ETag)",
    responses=problem_responses(*AUTH_ERRORS, 404, 409, 412, 422, 428),
)
async def update_model(
    session: SessionDep,
    principal: Editor,
    model_id: uuid.UUID,
    body: AIModelUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> AIModelRead:
    read = await service.update_model(
        session, principal=principal, model_id=model_id, data=body, if_match=if_match
    )
    response.headers["ETag"] = read.etag
    return read


@router.delete(
    "/models/{model_id}",
    operation_id="delete_model",
    summary="Delete an unlinked AI model for good (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(*AUTH_ERRORS, 404, 409),
)
async def delete_model(session: SessionDep, principal: Admin, model_id: uuid.UUID) -> None:
    await service.delete_model(session, principal=principal, model_id=model_id)


@router.post(
    "/models/{model_id}/archive",
    operation_id="archive_model",
    summary="Archive (soft-delete) an AI model",
    responses=problem_responses(*AUTH_ERRORS, 404),
)
async def archive_model(session: SessionDep, principal: Editor, model_id: uuid.UUID) -> AIModelRead:
    return await service.set_archived(
        session, principal=principal, model_id=model_id, archived=True
    )


@router.post(
    "/models/{model_id}/unarchive",
    operation_id="unarchive_model",
    summary="Restore an archived AI model",
    responses=problem_responses(*AUTH_ERRORS, 404),
)
async def unarchive_model(
    session: SessionDep, principal: Editor, model_id: uuid.UUID
) -> AIModelRead:
    return await service.set_archived(
        session, principal=principal, model_id=model_id, archived=False
    )


@router.get(
    "/models/{model_id}/systems",
    operation_id="list_model_systems",
    summary="The AI systems that use a model, with each description of use",
    responses=problem_responses(*AUTH_ERRORS, 404),
)
async def list_model_systems(
    session: SessionDep, principal: Viewer, model_id: uuid.UUID
) -> list[ModelSystemLinkRead]:
    return await service.list_systems_of_model(session, principal=principal, model_id=model_id)


@router.get(
    "/models/{model_id}/history",
    operation_id="list_model_history",
    summary="Every change to a model: who, when, old and new values",
    responses=problem_responses(*AUTH_ERRORS, 404, 422),
)
async def list_model_history(
    session: SessionDep, principal: Viewer, model_id: uuid.UUID, params: HistoryPage
) -> Page[HistoryEntryRead]:
    rows, cursor = await list_history(
        session, workspace=principal.workspace, resource_id=model_id, params=params
    )
    if not rows and params.cursor is None:
        await service.get_model(session, principal=principal, model_id=model_id)
    return Page(items=[HistoryEntryRead.model_validate(r) for r in rows], next_cursor=cursor)
