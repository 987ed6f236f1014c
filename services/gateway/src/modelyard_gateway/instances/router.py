"""Admin routes of model instances.

JWT: viewers read; admins create instances and change where they send traffic (their
destination); admins and operators change the rest, delete and check. Roles are checked by the
route's dependency, before anything else runs (an idempotent replay included).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from modelyard_common.auth import Admin, Operator, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.http import IfMatch
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes, no_content, with_etag
from modelyard_gateway.deps import EnabledFilter, creates
from modelyard_gateway.instances import service
from modelyard_gateway.instances.check import CheckLimiterDep, probe_instance
from modelyard_gateway.instances.repository import SORTS
from modelyard_gateway.instances.schemas import (
    InstanceCheck,
    InstanceCreate,
    InstanceKind,
    InstanceRead,
    InstanceUpdate,
)
from modelyard_gateway.routing.engine import RoutingDep

router = APIRouter(prefix="/v1/instances", tags=["instances"])
instances = Routes(router, item="/{instance_id}")

Paging = Annotated[PageParams, Depends(page_params("created_at", SORTS))]


@instances.listing(
    "list_instances", "List the workspace's model instances", problems=(401, 403, 422)
)
async def list_instances(
    session: SessionDep,
    principal: Viewer,
    paging: Paging,
    kind: Annotated[InstanceKind | None, Query(description="Only this kind.")] = None,
    enabled: EnabledFilter = None,
) -> Page[InstanceRead]:
    """Return one page of the workspace's instances, each with its shared health."""
    return await service.list_instances(
        session, principal=principal, params=paging, kind=kind, enabled=enabled
    )


@creates.route(
    instances,
    "create_instance",
    "Create a model instance (a backend)",
    problems=(401, 403, 409, 422),
    response_model=InstanceRead,
    location="/v1/instances/{id}",
)
async def create_instance(
    session: SessionDep, routing: RoutingDep, principal: Admin, body: InstanceCreate
) -> InstanceRead:
    """Create an instance; secrets are encrypted and never returned."""
    # The idempotency record's fingerprint covers the secrets too: hashed, never stored.
    return await service.create_instance(
        session, box=routing.box, egress=routing.egress, principal=principal, body=body
    )


@instances.reading(
    "get_instance", "Get a model instance with its shared health", problems=(401, 403, 404)
)
async def get_instance(
    session: SessionDep, principal: Viewer, instance_id: uuid.UUID, response: Response
) -> InstanceRead:
    """Return one instance with its shared health; its ETag is in the header."""
    found = await service.get_instance(session, principal=principal, instance_id=instance_id)
    return with_etag(response, found)


@instances.changing(
    "update_instance",
    "Change a model instance (If-Match required)",
    problems=(401, 403, 404, 409, 412, 422, 428),
)
async def update_instance(
    session: SessionDep,
    routing: RoutingDep,
    principal: Operator,
    instance_id: uuid.UUID,
    body: InstanceUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> InstanceRead:
    """Change the given fields; `If-Match` must carry the current ETag."""
    updated = await service.update_instance(
        session,
        box=routing.box,
        egress=routing.egress,
        principal=principal,
        instance_id=instance_id,
        body=body,
        if_match=if_match,
    )
    return with_etag(response, updated)


@instances.deleting(
    "delete_instance",
    "Delete a model instance that no group lists",
    problems=(401, 403, 404, 409),
)
async def delete_instance(
    session: SessionDep, principal: Operator, instance_id: uuid.UUID
) -> Response:
    """Delete an instance; 409 names the groups that still list it."""
    await service.delete_instance(session, principal=principal, instance_id=instance_id)
    return no_content()


@instances.acting(
    "check_instance",
    "Probe a model instance now: latency or the error",
    problems=(401, 403, 404, 409, 422, 429),
    subpath="/check",
)
async def check_instance(
    session: SessionDep,
    routing: RoutingDep,
    limiter: CheckLimiterDep,
    principal: Operator,
    instance_id: uuid.UUID,
) -> InstanceCheck:
    """Probe the instance now (its health path) and return the latency or the error.

    A destination the egress policy refuses is a 422 before any connection, in the same words
    whatever it is; `error` is a fixed word (`connect_failed`, `timeout`, `http_status`, ...),
    never the transport's text; at most `MODELYARD_GATEWAY_CHECK_BURST` checks per instance
    within `_CHECK_WINDOW_S` (429 with `Retry-After` past it).
    """
    limiter.take(instance_id)
    return await probe_instance(
        session, routing=routing, principal=principal, instance_id=instance_id
    )
