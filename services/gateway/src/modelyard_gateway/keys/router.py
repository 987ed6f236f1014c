"""Admin routes of client API keys (JWT: viewers read; admins and operators write)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from modelyard_common.auth import Operator, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.http import IfMatch
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes, with_etag
from modelyard_gateway.deps import creates
from modelyard_gateway.keys import service
from modelyard_gateway.keys.repository import SORTS
from modelyard_gateway.keys.schemas import KeyCreate, KeyCreated, KeyRead, KeyUpdate

router = APIRouter(prefix="/v1/keys", tags=["keys"])
keys = Routes(router, item="/{key_id}")

Paging = Annotated[PageParams, Depends(page_params("created_at", SORTS))]


@keys.listing(
    "list_keys",
    "List the workspace's client API keys (never the keys themselves)",
    problems=(401, 403, 422),
)
async def list_keys(
    session: SessionDep,
    principal: Viewer,
    paging: Paging,
    revoked: Annotated[bool | None, Query(description="Only revoked (or live) keys.")] = None,
) -> Page[KeyRead]:
    """Return one page of the workspace's keys (never the keys themselves)."""
    return await service.list_keys(session, principal=principal, params=paging, revoked=revoked)


# Only the hash of a key is stored anywhere, the idempotency record included: a retried
# create confirms the key but answers `key: null` (header Idempotent-Secret-Withheld).
@creates.route(
    keys,
    "create_key",
    "Create a client API key; the key is shown only in this answer",
    problems=(401, 403, 422),
    response_model=KeyCreated,
    location="/v1/keys/{id}",
    secret_fields=("key",),
)
async def create_key(session: SessionDep, principal: Operator, body: KeyCreate) -> KeyCreated:
    """Create a key; the answer is the only place the key appears."""
    return await service.create_key(session, principal=principal, body=body)


@keys.reading("get_key", "Get a client API key (without the key)", problems=(401, 403, 404))
async def get_key(
    session: SessionDep, principal: Viewer, key_id: uuid.UUID, response: Response
) -> KeyRead:
    """Return one key (without the key); its ETag is in the header."""
    return with_etag(response, await service.get_key(session, principal=principal, key_id=key_id))


@keys.changing(
    "update_key",
    "Change a client API key's name, limits and budgets or expiry (If-Match required)",
    problems=(401, 403, 404, 412, 422, 428),
)
async def update_key(
    session: SessionDep,
    principal: Operator,
    key_id: uuid.UUID,
    body: KeyUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> KeyRead:
    """Change the given fields; every replica applies them within a second."""
    updated = await service.update_key(
        session, principal=principal, key_id=key_id, body=body, if_match=if_match
    )
    return with_etag(response, updated)


@keys.deleting(
    "revoke_key",
    "Revoke a client API key; it stops working within a second on every replica",
    problems=(401, 403, 404),
    status_code=200,
)
async def revoke_key(session: SessionDep, principal: Operator, key_id: uuid.UUID) -> KeyRead:
    """Revoke a key; every replica refuses it within a second."""
    return await service.revoke_key(session, principal=principal, key_id=key_id)
