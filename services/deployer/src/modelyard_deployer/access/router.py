"""Routes of `/v1/models/{model_id}/access`: per-model grants."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from modelyard_common.auth import Viewer
from modelyard_common.db import SessionDep
from modelyard_common.http import IdempotencyKey, IfMatch
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes, no_content, with_etag
from modelyard_deployer.access import repository, service
from modelyard_deployer.access.schemas import Grant, GrantCreate, GrantUpdate
from modelyard_deployer.deps import RegistryHttpDep, creates
from modelyard_deployer.web import AuthorizationHeader

router = APIRouter(prefix="/v1/models/{model_id}/access", tags=["access"])
grants = Routes(router, item="/{grant_id}")

GrantPage = Annotated[PageParams, Depends(page_params("created_at", repository.SORTS))]


@grants.listing("list_access_grants", "List who has access to a model", problems=(401, 404, 422))
async def list_access_grants(
    model_id: uuid.UUID, session: SessionDep, principal: Viewer, params: GrantPage
) -> Page[Grant]:
    return await service.list_grants(session, principal=principal, model_id=model_id, params=params)


@grants.creating(
    "create_access_grant",
    "Grant a user or a role access to a model",
    problems=(401, 403, 404, 409, 422, 503),
    response_model=Grant,
)
async def create_access_grant(
    model_id: uuid.UUID,
    body: GrantCreate,
    session: SessionDep,
    principal: Viewer,
    http: RegistryHttpDep,
    authorization: AuthorizationHeader,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    # A replayed Idempotency-Key answers only someone a fresh request would serve.
    await service.authorize_grant_change(session, principal=principal, model_id=model_id)
    return await creates.respond(
        session,
        principal=principal,
        operation=f"create_access_grant:{model_id}",
        key=idempotency_key,
        body=body,
        create=lambda: service.create_grant(
            session,
            http=http,
            principal=principal,
            model_id=model_id,
            body=body,
            authorization=authorization,
        ),
        location=f"/v1/models/{model_id}/access/{{id}}",
    )


@grants.reading("get_access_grant", "Get one access grant", problems=(401, 404))
async def get_access_grant(
    model_id: uuid.UUID,
    grant_id: uuid.UUID,
    session: SessionDep,
    principal: Viewer,
    response: Response,
) -> Grant:
    return with_etag(
        response,
        await service.get_grant(session, principal=principal, model_id=model_id, grant_id=grant_id),
    )


@grants.changing(
    "update_access_grant",
    "Change the level of an access grant",
    problems=(401, 403, 404, 412, 422, 428),
)
async def update_access_grant(
    model_id: uuid.UUID,
    grant_id: uuid.UUID,
    body: GrantUpdate,
    session: SessionDep,
    principal: Viewer,
    response: Response,
    if_match: IfMatch = None,
) -> Grant:
    return with_etag(
        response,
        await service.update_grant(
            session,
            principal=principal,
            model_id=model_id,
            grant_id=grant_id,
            body=body,
            if_match=if_match,
        ),
    )


@grants.deleting("delete_access_grant", "Revoke an access grant", problems=(401, 403, 404))
async def delete_access_grant(
    model_id: uuid.UUID, grant_id: uuid.UUID, session: SessionDep, principal: Viewer
) -> Response:
    await service.delete_grant(session, principal=principal, model_id=model_id, grant_id=grant_id)
    return no_content()
