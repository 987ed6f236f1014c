"""The rules of AI Act obligations: derived from risk and role, and gating `in_use`."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.errors import ConflictError, NotFoundError, UnprocessableError, field_error
from modelyard_common.history import diff
from modelyard_common.http import check_if_match, make_etag
from modelyard_registry.db import AISystem, Evidence, SystemObligation
from modelyard_registry.history.service import new_revision, record_change
from modelyard_registry.inventory.service import get_item
from modelyard_registry.obligations import repository
from modelyard_registry.obligations.catalogue import BY_CODE, Obligation, obligations_for
from modelyard_registry.obligations.schemas import (
    CLOSED,
    ObligationRead,
    ObligationStatus,
    ObligationUpdate,
)


def _read(item: Obligation, row: SystemObligation | None) -> ObligationRead:
    return ObligationRead(
        code=item.code,
        article=item.article,
        title=item.title,
        required=item.required,
        status=ObligationStatus(row.status) if row else ObligationStatus.open,
        owner=row.owner if row else "",
        evidence_id=row.evidence_id if row else None,
        note=row.note if row else "",
        updated_at=row.updated_at if row else None,
        updated_by=row.updated_by if row else None,
        etag=make_etag(row.revision if row else 0),
    )


async def list_obligations(
    session: AsyncSession, *, principal: Principal, system_id: uuid.UUID
) -> list[ObligationRead]:
    """Return the system's obligations for its current risk level and role, with status."""
    system = await get_item(session, AISystem, principal=principal, item_id=system_id)
    rows = await repository.of_system(session, system_id=system.id)
    return [
        _read(item, rows.get(item.code))
        for item in obligations_for(system.risk_level, system.ai_act_role)
    ]


async def update_obligation(
    session: AsyncSession,
    *,
    principal: Principal,
    system_id: uuid.UUID,
    code: str,
    body: ObligationUpdate,
    if_match: str | None,
) -> ObligationRead:
    """Return the obligation after the change; 412 when `if_match` is stale."""
    system = await get_item(session, AISystem, principal=principal, item_id=system_id)
    item = BY_CODE.get(code)
    if item is None or item not in obligations_for(system.risk_level, system.ai_act_role):
        raise NotFoundError(f"The system has no obligation {code!r} at its risk level and role.")
    row = await repository.get(session, system_id=system.id, code=code, for_update=True)
    check_if_match(if_match, row.revision if row else 0)
    changes = body.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    if changes.get("status") == ObligationStatus.not_applicable and item.required:
        raise ConflictError(
            f"{item.article} requires {code!r} of this system; it cannot be marked not "
            "applicable. If it truly does not apply, the risk level or role is wrong."
        )
    if body.evidence_id is not None:
        evidence = await session.get(Evidence, body.evidence_id)
        if evidence is None or evidence.workspace != principal.workspace:
            raise UnprocessableError(
                "No such evidence item in this workspace.",
                errors=[
                    field_error(
                        ["body", "evidence_id"], message="unknown evidence id", type="reference"
                    )
                ],
            )
    if row is None:
        row = SystemObligation(
            system_id=system.id,
            code=code,
            workspace=principal.workspace,
            status=ObligationStatus.open.value,
            owner="",
            note="",
            revision=0,
            updated_by=principal.sub,
        )
        session.add(row)
    before = _read(item, row).model_dump(mode="json", include=set(ObligationUpdate.model_fields))
    for field, value in changes.items():
        setattr(row, field, value)
    new_revision(row, principal)
    await session.flush()
    read = _read(item, row)
    await record_change(
        session,
        principal=principal,
        resource_type="system",
        resource_id=system.id,
        action="obligation_updated",
        changes={
            f"obligations.{code}.{k}": v
            for k, v in diff(
                before, read.model_dump(mode="json", include=set(ObligationUpdate.model_fields))
            ).items()
        },
    )
    return read


async def ensure_may_be_in_use(
    session: AsyncSession, *, system: AISystem, status: str, risk_level: str, ai_act_role: str
) -> None:
    """Raise 409 when a system with these values may not be in use under the AI Act."""
    if status != "in_use":
        return
    if risk_level == "unacceptable":
        raise ConflictError(
            "An unacceptable-risk system is a prohibited practice (AI Act Art. 5): it cannot "
            "be in use."
        )
    if risk_level != "high":
        return
    rows = await repository.of_system(session, system_id=system.id) if system.id else {}
    open_items = [
        item
        for item in obligations_for(risk_level, ai_act_role)
        if item.required and (rows.get(item.code) is None or rows[item.code].status not in CLOSED)
    ]
    if open_items:
        raise ConflictError(
            f"A high-risk system cannot be in use while {len(open_items)} required "
            f"obligation(s) are open: {', '.join(i.code for i in open_items)}.",
            open_obligations=[
                {"code": i.code, "article": i.article, "title": i.title} for i in open_items
            ],
        )
