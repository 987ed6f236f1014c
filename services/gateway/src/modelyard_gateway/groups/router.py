"""Admin routes of model groups (JWT: viewers read, editors write)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response

from modelyard_common.auth import Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.http import AuthorizationHeader, IdempotencyKey, IfMatch
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_gateway.deps import AdminRoutes, creates, with_etag
from modelyard_gateway.endpoints.service import ask_deployer_to_announce
from modelyard_gateway.governance.binding import BindingGateDep
from modelyard_gateway.governance.projection import ProjectionDep
from modelyard_gateway.groups import service
from modelyard_gateway.groups.repository import SORTS
from modelyard_gateway.groups.schemas import GroupCreate, GroupRead, GroupUpdate

router = APIRouter(prefix="/v1/groups", tags=["groups"])
routes = AdminRoutes(router, "/{group_id}")

Paging = Annotated[PageParams, Depends(page_params("created_at", SORTS))]


def fill_when_committed(
    tasks: BackgroundTasks,
    request: Request,
    model_id: uuid.UUID | None,
    authorization: str | None,
) -> None:
    """Once the group is committed, have the deployer announce what already runs for it."""
    if model_id is None:
        return
    tasks.add_task(
        ask_deployer_to_announce,
        deployer_url=request.app.state.settings.deployer_url,
        model_id=model_id,
        authorization=authorization,
    )


@routes.listing("list_groups", "List the workspace's model groups")
async def list_groups(
    session: SessionDep,
    principal: Viewer,
    paging: Paging,
    governance: ProjectionDep,
    enabled: Annotated[bool | None, Query(description="Only enabled (or disabled) ones.")] = None,
) -> Page[GroupRead]:
    """Return one page of the workspace's model groups."""
    items, cursor = await service.list_groups(
        session, principal=principal, params=paging, enabled=enabled, governance=governance
    )
    return Page(items=items, next_cursor=cursor)


@routes.creating(
    "create_group",
    "Create a model group (the name clients send as `model`)",
    GroupRead,
    409,
    422,
    503,
)
async def create_group(
    session: SessionDep,
    principal: Editor,
    body: GroupCreate,
    tasks: BackgroundTasks,
    request: Request,
    gate: BindingGateDep,
    authorization: AuthorizationHeader = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create a group; `instance_ids` is the failover order.

    A group bound to a registry model also serves the deployments already running for it.
    """
    fill_when_committed(tasks, request, body.registry_model_id, authorization)
    return await creates.respond(
        session,
        principal=principal,
        operation="create_group",
        key=idempotency_key,
        body=body,
        create=lambda: service.create_group(session, principal=principal, body=body, gate=gate),
        location="/v1/groups/{id}",
    )


@routes.reading("get_group", "Get a model group", GroupRead)
async def get_group(
    session: SessionDep,
    principal: Viewer,
    group_id: uuid.UUID,
    response: Response,
    governance: ProjectionDep,
) -> GroupRead:
    """Return one group; its ETag is in the header."""
    found = await service.get_group(
        session, principal=principal, group_id=group_id, governance=governance
    )
    return with_etag(response, found)


@routes.changing(
    "update_group", "Change a model group (If-Match required)", GroupRead, 409, 412, 422, 428, 503
)
async def update_group(
    session: SessionDep,
    principal: Editor,
    group_id: uuid.UUID,
    body: GroupUpdate,
    response: Response,
    tasks: BackgroundTasks,
    request: Request,
    gate: BindingGateDep,
    authorization: AuthorizationHeader = None,
    if_match: IfMatch = None,
) -> GroupRead:
    """Change the given fields; `If-Match` must carry the current ETag."""
    updated = await service.update_group(
        session,
        principal=principal,
        group_id=group_id,
        body=body,
        if_match=if_match,
        gate=gate,
    )
    if "registry_model_id" in body.model_fields_set:
        fill_when_committed(tasks, request, updated.registry_model_id, authorization)
    return with_etag(response, updated)


@routes.deleting("delete_group", "Delete a model group (its instances stay)")
async def delete_group(session: SessionDep, principal: Editor, group_id: uuid.UUID) -> None:
    """Delete a group; its instances stay."""
    await service.delete_group(session, principal=principal, group_id=group_id)
