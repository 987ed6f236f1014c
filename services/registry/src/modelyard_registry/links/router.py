"""HTTP routes of system-model links."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from modelyard_common.auth import Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.errors import problem_responses
from modelyard_common.http import IdempotencyKey, IfMatch
from modelyard_registry.deps import creates
from modelyard_registry.links import service
from modelyard_registry.links.schemas import LinkCreate, LinkRead, LinkUpdate

router = APIRouter(prefix="/v1/systems/{system_id}/models", tags=["links"])
AUTH_ERRORS = (401, 403)


@router.get(
    "",
    operation_id="list_system_models",
    summary="The models a system uses, with each description of use",
    responses=problem_responses(*AUTH_ERRORS, 404),
)
async def list_system_models(
    session: SessionDep, principal: Viewer, system_id: uuid.UUID
) -> list[LinkRead]:
    return await service.list_models_of_system(session, principal=principal, system_id=system_id)


@router.post(
    "",
    operation_id="link_model",
    summary="Link a model to a system, saying how the system uses it",
    status_code=status.HTTP_201_CREATED,
    response_model=LinkRead,
    responses=problem_responses(*AUTH_ERRORS, 404, 409, 422),
)
async def link_model(
    session: SessionDep,
    principal: Editor,
    system_id: uuid.UUID,
    body: LinkCreate,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await creates.respond(
        session,
        principal=principal,
        operation=f"link_model:{system_id}",
        key=idempotency_key,
        body=body,
        create=lambda: service.attach(session, principal=principal, system_id=system_id, body=body),
        location=f"/v1/systems/{system_id}/models/{{model_id}}",
    )


@router.patch(
    "/{model_id}",
    operation_id="update_link",
    summary="Change how a system uses a model (send If-Match)",
    responses=problem_responses(*AUTH_ERRORS, 404, 412, 422, 428),
)
async def update_link(
    session: SessionDep,
    principal: Editor,
    system_id: uuid.UUID,
    model_id: uuid.UUID,
    body: LinkUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> LinkRead:
    read = await service.update(
        session,
        principal=principal,
        system_id=system_id,
        model_id=model_id,
        body=body,
        if_match=if_match,
    )
    response.headers["ETag"] = read.etag
    return read


@router.delete(
    "/{model_id}",
    operation_id="unlink_model",
    summary="Unlink a model from a system",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(*AUTH_ERRORS, 404),
)
async def unlink_model(
    session: SessionDep, principal: Editor, system_id: uuid.UUID, model_id: uuid.UUID
) -> None:
    await service.detach(session, principal=principal, system_id=system_id, model_id=model_id)
