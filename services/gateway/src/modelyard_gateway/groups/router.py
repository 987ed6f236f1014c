"""Admin routes of model groups (JWT: viewers read, editors write)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response

from modelyard_common.auth import Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.history import HistoryEntryRead, HistoryPaging
from modelyard_common.http import AuthorizationHeader, IfMatch
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes, no_content, with_etag
from modelyard_gateway.deps import EnabledFilter, creates
from modelyard_gateway.endpoints.service import ask_deployer_to_announce
from modelyard_gateway.governance.binding import BindingGateDep
from modelyard_gateway.governance.projection import ProjectionDep
from modelyard_gateway.groups import service
from modelyard_gateway.groups.repository import SORTS
from modelyard_gateway.groups.schemas import GroupCreate, GroupRead, GroupUpdate

router = APIRouter(prefix="/v1/groups", tags=["groups"])
groups = Routes(router, item="/{group_id}")

Paging = Annotated[PageParams, Depends(page_params("created_at", SORTS))]


@dataclass(frozen=True, slots=True)
class Filling:
    """Fills a bound group once it is committed: the deployer announces what already runs."""

    tasks: BackgroundTasks
    deployer_url: str
    authorization: str | None

    def after_commit(self, model_id: uuid.UUID | None) -> None:
        """Once the group is committed, have the deployer announce what runs for `model_id`."""
        if model_id is None:
            return
        self.tasks.add_task(
            ask_deployer_to_announce,
            deployer_url=self.deployer_url,
            model_id=model_id,
            authorization=self.authorization,
        )


def filling(
    tasks: BackgroundTasks, request: Request, authorization: AuthorizationHeader = None
) -> Filling:
    """Return this request's filling, asking the deployer as the caller."""
    return Filling(tasks, request.app.state.settings.deployer_url, authorization)


FillingDep = Annotated[Filling, Depends(filling)]


@groups.listing("list_groups", "List the workspace's model groups", problems=(401, 403, 422))
async def list_groups(
    session: SessionDep,
    principal: Viewer,
    paging: Paging,
    governance: ProjectionDep,
    enabled: EnabledFilter = None,
) -> Page[GroupRead]:
    """Return one page of the workspace's model groups."""
    return await service.list_groups(
        session, principal=principal, params=paging, enabled=enabled, governance=governance
    )


@creates.route(
    groups,
    "create_group",
    "Create a model group (the name clients send as `model`)",
    problems=(401, 403, 409, 422, 503),
    response_model=GroupRead,
    location="/v1/groups/{id}",
)
async def create_group(
    session: SessionDep,
    principal: Editor,
    body: GroupCreate,
    gate: BindingGateDep,
    fill: FillingDep,
) -> GroupRead:
    """Create a group; `instance_ids` is the failover order.

    A group bound to a registry model also serves the deployments already running for it.
    """
    fill.after_commit(body.registry_model_id)
    return await service.create_group(session, principal=principal, body=body, gate=gate)


@groups.reading("get_group", "Get a model group", problems=(401, 403, 404))
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


@groups.changing(
    "update_group",
    "Change a model group (If-Match required)",
    problems=(401, 403, 404, 409, 412, 422, 428, 503),
)
async def update_group(
    session: SessionDep,
    principal: Editor,
    group_id: uuid.UUID,
    body: GroupUpdate,
    response: Response,
    gate: BindingGateDep,
    fill: FillingDep,
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
        fill.after_commit(updated.registry_model_id)
    return with_etag(response, updated)


@groups.deleting(
    "delete_group", "Delete a model group (its instances stay)", problems=(401, 403, 404)
)
async def delete_group(session: SessionDep, principal: Editor, group_id: uuid.UUID) -> Response:
    """Delete a group; its instances stay."""
    await service.delete_group(session, principal=principal, group_id=group_id)
    return no_content()


@groups.reading(
    "list_group_history",
    "Every change to a model group (strategy and weights included): who, when, old and new",
    problems=(401, 403, 422),
    subpath="/history",
)
async def list_group_history(
    session: SessionDep, principal: Viewer, group_id: uuid.UUID, paging: HistoryPaging
) -> Page[HistoryEntryRead]:
    """Return one page of the group's changes, oldest first (kept after a delete)."""
    return await service.group_history(
        session, principal=principal, group_id=group_id, params=paging
    )
