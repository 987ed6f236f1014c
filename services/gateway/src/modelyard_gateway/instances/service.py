"""Rules about model instances: validation across fields, destinations, secrets, deletion."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal, Role
from modelyard_common.errors import (
    ConflictError,
    ForbiddenError,
    invalid_field,
    reject_nulls,
)
from modelyard_common.http import check_if_match, make_etag
from modelyard_common.pagination import Page, PageParams
from modelyard_common.row_views import view_of
from modelyard_gateway.crypto import SecretBox
from modelyard_gateway.db import InstanceState, ModelInstance, announce_config_change
from modelyard_gateway.destination import DESTINATION_FIELDS
from modelyard_gateway.egress import EgressPolicy, EgressRefused
from modelyard_gateway.instances import repository
from modelyard_gateway.instances.schemas import (
    InstanceCreate,
    InstanceHealthRead,
    InstanceKind,
    InstanceRead,
    InstanceUpdate,
    check_kind_fields,
)
from modelyard_gateway.instances.secrets import seal, seal_headers
from modelyard_gateway.instances.validation import looks_like_credential
from modelyard_gateway.workspace_rows import (
    ensure_name_free,
    ensure_rename_free,
    require,
    save_change,
)

_SECRET_FIELDS = {"token", "proxy_password", "secret_headers"}
# Where requests go (`destination.DESTINATION_FIELDS`, health_path included): changing any of
# them drops the sealed secrets the request does not resend, so nobody can point an instance
# elsewhere and collect its credentials; and only admins may change them.
HIDDEN_VALUE = "********"


def health_of(state: InstanceState | None) -> InstanceHealthRead:
    """Return the API view of an instance's shared health row."""
    if state is None:
        return InstanceHealthRead(status="up")
    now = datetime.now(UTC)
    if state.health_down:
        status = "down"
    elif state.cooldown_until is not None and state.cooldown_until > now:
        status = "cooldown"
    else:
        status = "up"
    return InstanceHealthRead(
        status=status,
        reason=state.reason if status != "up" else "",
        cooldown_until=state.cooldown_until if status == "cooldown" else None,
        checked_at=state.checked_at,
    )


def visible_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """Return plain headers as readers may see them.

    Earlier versions stored credential headers here in clear; their values stay hidden until
    `modelyard-gateway reseal` moves them into the sealed secret headers.
    """
    return {
        name: HIDDEN_VALUE if looks_like_credential(name) else value
        for name, value in (headers or {}).items()
    }


def to_read(row: ModelInstance, state: InstanceState | None) -> InstanceRead:
    """Return the API view of an instance (secrets left out)."""
    return view_of(
        InstanceRead,
        row,
        has_token=row.token_sealed is not None,
        has_proxy_password=row.proxy_password_sealed is not None,
        extra_headers=visible_headers(row.extra_headers),
        has_secret_headers=row.secret_headers_sealed is not None,
        secret_header_names=list(row.secret_header_names or []),
        health=health_of(state),
        etag=make_etag(row.revision),
    )


async def views(session: AsyncSession, rows: Sequence[ModelInstance]) -> list[InstanceRead]:
    """Return the API views of instances, each with its shared health."""
    states = await repository.states(session, ids=[r.id for r in rows])
    return [to_read(r, states.get(r.id)) for r in rows]


async def check_egress(egress: EgressPolicy, destination: Mapping[str, Any]) -> None:
    """Raise a 422 problem unless the egress policy lets the gateway reach the destination."""
    try:
        await egress.check_destination(destination)
    except EgressRefused as exc:
        raise invalid_field(
            f"The gateway may not connect there: {exc}.",
            ["body"],
            message=str(exc),
            type="egress_refused",
        ) from exc


async def create_instance(
    session: AsyncSession,
    *,
    box: SecretBox,
    egress: EgressPolicy,
    principal: Principal,
    body: InstanceCreate,
) -> InstanceRead:
    """Return the new instance after storing it (secrets encrypted, destination allowed)."""
    await ensure_name_free(session, ModelInstance, workspace=principal.workspace, name=body.name)
    fields = body.model_dump(exclude=_SECRET_FIELDS)
    await check_egress(egress, {f: fields[f] for f in DESTINATION_FIELDS})
    headers_sealed, header_names = seal_headers(box, body.secret_headers)
    row = ModelInstance(
        id=uuid.uuid4(),
        workspace=principal.workspace,
        token_sealed=seal(box, body.token),
        proxy_password_sealed=seal(box, body.proxy_password),
        secret_headers_sealed=headers_sealed,
        secret_header_names=header_names,
        revision=1,
        **fields,
    )
    session.add(row)
    await session.flush()
    await announce_config_change(session)
    return to_read(row, None)


async def get_instance(
    session: AsyncSession, *, principal: Principal, instance_id: uuid.UUID
) -> InstanceRead:
    """Return one instance of the principal's workspace."""
    row = await require(session, ModelInstance, workspace=principal.workspace, row_id=instance_id)
    [view] = await views(session, [row])
    return view


async def list_instances(
    session: AsyncSession,
    *,
    principal: Principal,
    params: PageParams,
    kind: InstanceKind | None,
    enabled: bool | None,
) -> Page[InstanceRead]:
    """Return one page of the workspace's instances."""
    rows, cursor = await repository.page(
        session,
        workspace=principal.workspace,
        params=params,
        kind=kind.value if kind else None,
        enabled=enabled,
    )
    return Page(items=await views(session, rows), next_cursor=cursor)


async def update_instance(
    session: AsyncSession,
    *,
    box: SecretBox,
    egress: EgressPolicy,
    principal: Principal,
    instance_id: uuid.UUID,
    body: InstanceUpdate,
    if_match: str | None,
) -> InstanceRead:
    """Return the instance after applying the given fields (412 on a stale ETag).

    A new destination drops every sealed secret that this request does not send again.
    """
    row = await require(session, ModelInstance, workspace=principal.workspace, row_id=instance_id)
    check_if_match(if_match, row.revision)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude=_SECRET_FIELDS)
    nullable = {
        "host",
        "port",
        "base_url",
        "proxy_url",
        "proxy_username",
        "max_concurrency",
        "health_path",
    }
    reject_nulls(changes, [field for field in changes if field not in nullable])
    merged = {
        "kind": changes.get("kind", row.kind),
        "host": changes.get("host", row.host),
        "port": changes.get("port", row.port),
        "base_url": changes.get("base_url", row.base_url),
    }
    try:
        check_kind_fields(**merged)
    except ValueError as exc:
        raise invalid_field(str(exc), ["body"], message=str(exc), type="value_error") from exc
    await ensure_rename_free(session, row, changes.get("name"))
    moved = any(f in changes and changes[f] != getattr(row, f) for f in DESTINATION_FIELDS)
    if moved and not principal.has_role(Role.admin):
        raise ForbiddenError(
            "Only admins change where an instance's traffic goes (kind, host, port, protocol, "
            "path_prefix, base_url, health_path, proxy_url)."
        )
    if moved:
        await check_egress(egress, {f: changes.get(f, getattr(row, f)) for f in DESTINATION_FIELDS})
    for field, value in changes.items():
        setattr(row, field, value)
    sent = body.model_fields_set
    if "token" in sent or moved:
        row.token_sealed = seal(box, body.token)
    if "proxy_password" in sent or moved:
        row.proxy_password_sealed = seal(box, body.proxy_password)
    if "secret_headers" in sent or moved:
        row.secret_headers_sealed, row.secret_header_names = seal_headers(box, body.secret_headers)
    await save_change(session, row)
    [view] = await views(session, [row])
    return view


async def delete_instance(
    session: AsyncSession, *, principal: Principal, instance_id: uuid.UUID
) -> None:
    """Delete an instance no group lists (409 naming the groups otherwise)."""
    row = await require(session, ModelInstance, workspace=principal.workspace, row_id=instance_id)
    groups = await repository.group_names_using(session, instance_id=row.id)
    if groups:
        raise ConflictError(
            "The instance is in groups: " + ", ".join(groups) + ". Remove it from them first.",
            groups=groups,
        )
    await repository.delete(session, instance=row)
    await announce_config_change(session)
