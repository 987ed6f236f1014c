"""SQL of access grants."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.sorting import Sorting
from modelyard_deployer.db import AccessGrant

# What `sort` may name, and the column each orders by.
SORTING = Sorting(
    {"created_at": AccessGrant.created_at, "subject": AccessGrant.subject},
    id_column=AccessGrant.id,
)
SORTS = SORTING.names


def subject_clause(principal: Principal) -> ColumnElement[bool]:
    """Return the condition matching grants to the principal, by user or by one of its roles."""
    by_user = and_(AccessGrant.subject_type == "user", AccessGrant.subject == principal.sub)
    if not principal.roles:
        return by_user
    by_role = and_(AccessGrant.subject_type == "role", AccessGrant.subject.in_(principal.roles))
    return or_(by_user, by_role)


async def levels_of(session: AsyncSession, principal: Principal, model_id: uuid.UUID) -> list[str]:
    """Return the levels of every grant the principal holds on a model."""
    rows = await session.scalars(
        select(AccessGrant.level).where(
            AccessGrant.workspace == principal.workspace,
            AccessGrant.model_id == model_id,
            subject_clause(principal),
        )
    )
    return list(rows.all())


def granted_model_ids(principal: Principal) -> Select[uuid.UUID]:
    """Return a subquery of the model ids the principal holds any grant on."""
    return select(AccessGrant.model_id).where(
        AccessGrant.workspace == principal.workspace, subject_clause(principal)
    )


async def get(
    session: AsyncSession, *, workspace: str, model_id: uuid.UUID, grant_id: uuid.UUID
) -> AccessGrant | None:
    """Return one grant of a model."""
    return await session.scalar(
        select(AccessGrant).where(
            AccessGrant.workspace == workspace,
            AccessGrant.model_id == model_id,
            AccessGrant.id == grant_id,
        )
    )


async def find(
    session: AsyncSession, *, model_id: uuid.UUID, subject_type: str, subject: str
) -> AccessGrant | None:
    """Return the grant of one subject on a model, if any."""
    return await session.scalar(
        select(AccessGrant).where(
            AccessGrant.model_id == model_id,
            AccessGrant.subject_type == subject_type,
            AccessGrant.subject == subject,
        )
    )


def list_statement(*, workspace: str, model_id: uuid.UUID) -> Select[AccessGrant]:
    """Return the query of a model's grants."""
    return select(AccessGrant).where(
        AccessGrant.workspace == workspace, AccessGrant.model_id == model_id
    )
