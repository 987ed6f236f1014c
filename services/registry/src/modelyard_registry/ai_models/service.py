"""The rules about AI models: approvals voided by a change of what the model is, guarded delete.

Uniqueness, optimistic concurrency, archive and the audit trail are the inventory's
(`inventory.service`), shared with AI systems.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.errors import ConflictError
from modelyard_common.governance import ApprovalState
from modelyard_common.history import Changes, diff
from modelyard_common.row_views import view_of
from modelyard_registry.ai_models import repository
from modelyard_registry.ai_models.repository import ModelFilters
from modelyard_registry.ai_models.schemas import (
    AIModelCreate,
    AIModelRead,
    AIModelUpdate,
    ModelSystemLinkRead,
)
from modelyard_registry.db import AIModel
from modelyard_registry.inventory.service import Inventory
from modelyard_registry.links import repository as link_repository

# Fields whose change voids an approval: they alter what the model is, so a reviewer's
# decision about the old values says nothing about the new ones.
REAPPROVAL_FIELDS = ("learning_type", "functionality", "foundations", "provider")
# A change of what the model is sends these back to draft: a new review is needed.
VOIDABLE = {ApprovalState.in_review, ApprovalState.approved, ApprovalState.restricted}
# History records every field a change may set, and the states that change with it.
TRACKED = {*AIModelUpdate.model_fields, "archived", "approval", "approval_conditions"}


def reset_approval(model: AIModel) -> None:
    """Put the model back to `draft`, forgetting the request and decision it had."""
    model.approval = ApprovalState.draft
    model.approval_conditions = None
    model.approval_requested_by = model.approval_requested_at = None
    model.approval_request_comment = None
    model.approval_decided_by = model.approval_decided_at = None
    model.approval_decision_comment = None


class ModelInventory(Inventory[AIModel, AIModelRead, ModelFilters, AIModelCreate]):
    """The inventory of AI models, with the rules only models have."""

    async def on_update(
        self, session: AsyncSession, *, row: AIModel, before: dict[str, Any], delta: Changes
    ) -> Changes:
        """Return the change, with the approval voided when what the model is changed."""
        voiding = [f for f in REAPPROVAL_FIELDS if f in delta]
        if voiding and row.approval in VOIDABLE:
            reset_approval(row)
            delta = diff(before, self.snapshot(row))
            delta["reapproval_required"] = {"old": None, "new": voiding}
        return delta

    async def on_delete(self, session: AsyncSession, *, principal: Principal, row: AIModel) -> None:
        """Refuse to delete a linked model: 409 naming the systems that still use it."""
        links = await link_repository.systems_of_model(
            session, workspace=principal.workspace, model_id=row.id
        )
        if links:
            names = [system.name for _, system in links]
            raise ConflictError(
                f"The model is used by {len(names)} system(s): {', '.join(names)}. "
                "Unlink it first, or archive it instead.",
                systems=[{"id": str(system.id), "name": system.name} for _, system in links],
            )


models = ModelInventory(
    AIModel,
    read=AIModelRead,
    tracked=TRACKED,
    sort_columns=repository.SORT_COLUMNS,
    conditions=repository.conditions,
)


async def list_systems_of_model(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID
) -> list[ModelSystemLinkRead]:
    """Return every system that uses the model, with its description of use."""
    await models.get(session, principal=principal, item_id=model_id)
    return [
        view_of(
            ModelSystemLinkRead,
            link,
            system_name=system.name,
            risk_level=system.risk_level,
            status=system.status,
        )
        for link, system in await link_repository.systems_of_model(
            session, workspace=principal.workspace, model_id=model_id
        )
    ]
