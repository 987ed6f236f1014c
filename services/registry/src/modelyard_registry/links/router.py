"""HTTP routes of system-model links."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from modelyard_common.auth import Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.http import IfMatch
from modelyard_common.routes import Routes, with_etag
from modelyard_registry.deps import AUTH_PROBLEMS, creates
from modelyard_registry.links import service
from modelyard_registry.links.schemas import LinkCreate, LinkRead, LinkUpdate

router = APIRouter(prefix="/v1/systems/{system_id}/models", tags=["links"])
links = Routes(router, item="/{model_id}")


@links.listing(
    "list_system_models",
    "The models a system uses, with each description of use",
    problems=(*AUTH_PROBLEMS, 404),
)
async def list_system_models(
    session: SessionDep, principal: Viewer, system_id: uuid.UUID
) -> list[LinkRead]:
    return await service.list_models_of_system(session, principal=principal, system_id=system_id)


@creates.route(
    links,
    "link_model",
    "Link a model to a system, saying how the system uses it",
    problems=(*AUTH_PROBLEMS, 404, 409, 422),
    response_model=LinkRead,
    location="/v1/systems/{system_id}/models/{model_id}",
)
async def link_model(
    session: SessionDep, principal: Editor, system_id: uuid.UUID, body: LinkCreate
) -> LinkRead:
    return await service.attach(session, principal=principal, system_id=system_id, body=body)


@links.changing(
    "update_link",
    "Change how a system uses a model (send If-Match)",
    problems=(*AUTH_PROBLEMS, 404, 412, 422, 428),
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
    return with_etag(response, read)


@links.deleting("unlink_model", "Unlink a model from a system", problems=(*AUTH_PROBLEMS, 404))
async def unlink_model(
    session: SessionDep, principal: Editor, system_id: uuid.UUID, model_id: uuid.UUID
) -> None:
    await service.detach(session, principal=principal, system_id=system_id, model_id=model_id)
