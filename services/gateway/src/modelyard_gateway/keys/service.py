"""Rules about client API keys: shown once, stored hashed, limited to existing groups."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.http import check_if_match, make_etag
from modelyard_common.pagination import Page, PageParams
from modelyard_common.row_views import view_of
from modelyard_gateway.crypto import hash_api_key, new_api_key
from modelyard_gateway.db import ApiKey, announce_config_change
from modelyard_gateway.groups import repository as groups
from modelyard_gateway.keys import repository
from modelyard_gateway.keys.schemas import KeyCreate, KeyCreated, KeyRead, KeyUpdate
from modelyard_gateway.limits.schemas import LimitValues
from modelyard_gateway.workspace_rows import refuse_unknown, require


def _view(schema: type[KeyRead], row: ApiKey, **computed: object) -> KeyRead:
    """Return a key's view: its limits gathered, its ETag from its revision."""
    limits = LimitValues.model_validate(row, from_attributes=True)
    return view_of(schema, row, limits=limits, etag=make_etag(row.revision), **computed)


async def create_key(session: AsyncSession, *, principal: Principal, body: KeyCreate) -> KeyCreated:
    """Return a new key with its secret (the only time it is shown); only its hash is stored."""
    if body.groups:
        found = await groups.existing_names(
            session, workspace=principal.workspace, names=body.groups
        )
        refuse_unknown(
            "groups",
            body.groups,
            found,
            plural="groups",
            describe=lambda name: f"model group '{name}'",
        )
    secret = new_api_key()
    row = ApiKey(
        id=uuid.uuid4(),
        workspace=principal.workspace,
        name=body.name,
        key_hash=hash_api_key(secret),
        key_hint=secret[:10],
        groups=sorted(set(body.groups)) if body.groups is not None else None,
        created_by=principal.sub,
        created_at=datetime.now(UTC),
        expires_at=body.expires_at,
        revision=1,
        **body.limits.model_dump(),
    )
    await repository.add(session, key=row)
    await announce_config_change(session)
    created = _view(KeyCreated, row, key=secret)
    assert isinstance(created, KeyCreated)
    return created


async def list_keys(
    session: AsyncSession, *, principal: Principal, params: PageParams, revoked: bool | None
) -> Page[KeyRead]:
    """Return one page of the workspace's keys."""
    rows, cursor = await repository.page(
        session, workspace=principal.workspace, params=params, revoked=revoked
    )
    return Page(items=[_view(KeyRead, r) for r in rows], next_cursor=cursor)


async def get_key(session: AsyncSession, *, principal: Principal, key_id: uuid.UUID) -> KeyRead:
    """Return one key of the principal's workspace (without its secret)."""
    row = await require(session, ApiKey, workspace=principal.workspace, row_id=key_id)
    return _view(KeyRead, row)


async def revoke_key(session: AsyncSession, *, principal: Principal, key_id: uuid.UUID) -> KeyRead:
    """Return the key after revoking it (revoking twice keeps the first time)."""
    row = await require(session, ApiKey, workspace=principal.workspace, row_id=key_id)
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        row.revision += 1
        await session.flush()
        await announce_config_change(session)
    return _view(KeyRead, row)


async def update_key(
    session: AsyncSession,
    *,
    principal: Principal,
    key_id: uuid.UUID,
    body: KeyUpdate,
    if_match: str | None,
) -> KeyRead:
    """Return the key after changing the given fields; every replica applies them at once."""
    row = await require(session, ApiKey, workspace=principal.workspace, row_id=key_id)
    check_if_match(if_match, row.revision)
    given = body.model_fields_set
    if "name" in given and body.name is not None:
        row.name = body.name
    if "limits" in given:
        limits = body.limits if body.limits is not None else LimitValues()
        for name, value in limits.model_dump().items():
            setattr(row, name, value)
    if "expires_at" in given:
        row.expires_at = body.expires_at
    row.revision += 1
    await session.flush()
    await announce_config_change(session)
    return _view(KeyRead, row)
