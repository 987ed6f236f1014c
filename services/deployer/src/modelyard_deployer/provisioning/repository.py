"""SQL of provisioning tokens."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.db import workspace_row
from modelyard_common.sorting import Sorting
from modelyard_deployer.db import ProvisioningToken

# What `sort` may name, and the column each orders by.
SORTING = Sorting({"created_at": ProvisioningToken.created_at}, id_column=ProvisioningToken.id)
SORTS = SORTING.names


async def get(
    session: AsyncSession, *, workspace: str, token_id: uuid.UUID
) -> ProvisioningToken | None:
    """Return a provisioning token of a workspace."""
    return await workspace_row(session, ProvisioningToken, workspace=workspace, row_id=token_id)


async def by_hash_for_update(session: AsyncSession, token_hash: str) -> ProvisioningToken | None:
    """Return the provisioning token with this hash, locked (its uses are counted)."""
    return await session.scalar(
        select(ProvisioningToken)
        .where(ProvisioningToken.token_hash == token_hash)
        .with_for_update()
    )


def list_statement(*, workspace: str) -> Select[ProvisioningToken]:
    """Return the query of a workspace's provisioning tokens."""
    return select(ProvisioningToken).where(ProvisioningToken.workspace == workspace)
