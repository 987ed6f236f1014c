"""Rules about client API keys: shown once, stored hashed, limited to existing groups."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.errors import FieldError, UnprocessableError, found
from modelyard_common.pagination import PageParams
from modelyard_gateway.crypto import hash_api_key, new_api_key
from modelyard_gateway.db import ApiKey, announce_config_change
from modelyard_gateway.groups import repository as groups
from modelyard_gateway.keys import repository
from modelyard_gateway.keys.schemas import KeyCreate, KeyCreated, KeyRead


def to_read(row: ApiKey) -> KeyRead:
    """Return the API view of a key (without the key)."""
    return KeyRead(
        id=row.id,
        name=row.name,
        groups=row.groups,
        key_hint=row.key_hint,
        created_by=row.created_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def create_key(session: AsyncSession, *, principal: Principal, body: KeyCreate) -> KeyCreated:
    """Return a new key with its secret (the only time it is shown); only its hash is stored."""
    if body.groups:
        found = await groups.existing_names(
            session, workspace=principal.workspace, names=body.groups
        )
        missing = [
            FieldError(
                loc=["body", "groups", i],
                field=f"groups.{i}",
                message=f"no model group '{name}' in this workspace",
                type="not_found",
            )
            for i, name in enumerate(body.groups)
            if name not in found
        ]
        if missing:
            raise UnprocessableError("Some groups do not exist in this workspace.", errors=missing)
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
    )
    await repository.add(session, key=row)
    await announce_config_change(session)
    return KeyCreated(**to_read(row).model_dump(), key=secret)


async def list_keys(
    session: AsyncSession, *, principal: Principal, params: PageParams, revoked: bool | None
) -> tuple[list[KeyRead], str | None]:
    """Return one page of the workspace's keys and the next cursor."""
    rows, cursor = await repository.page(
        session, workspace=principal.workspace, params=params, revoked=revoked
    )
    return [to_read(r) for r in rows], cursor


async def _require(session: AsyncSession, workspace: str, key_id: uuid.UUID) -> ApiKey:
    row = await repository.get(session, workspace=workspace, key_id=key_id)
    return found(row, f"No API key {key_id} in this workspace.")


async def get_key(session: AsyncSession, *, principal: Principal, key_id: uuid.UUID) -> KeyRead:
    """Return one key of the principal's workspace (without its secret)."""
    row = await _require(session, principal.workspace, key_id)
    return to_read(row)


async def revoke_key(session: AsyncSession, *, principal: Principal, key_id: uuid.UUID) -> KeyRead:
    """Return the key after revoking it (revoking twice keeps the first time)."""
    row = await _require(session, principal.workspace, key_id)
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.flush()
        await announce_config_change(session)
    return to_read(row)
