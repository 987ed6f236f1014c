"""The rules of model approval: who may ask, who may decide, and from which state."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal, Role
from modelyard_common.db import utcnow
from modelyard_common.errors import ConflictError, ForbiddenError
from modelyard_common.governance import ApprovalState
from modelyard_common.history import diff
from modelyard_registry.ai_models.service import models
from modelyard_registry.approvals.schemas import ApprovalRead, Decision
from modelyard_registry.db import AIModel

APPROVER_ROLE = "approver"
# A decision to approve or restrict answers a pending request; blocking is a safety stop
# that any approver may pull at any time before retirement.
DECIDABLE = {
    "approved": {ApprovalState.in_review},
    "restricted": {ApprovalState.in_review},
    "blocked": {
        ApprovalState.draft,
        ApprovalState.in_review,
        ApprovalState.approved,
        ApprovalState.restricted,
    },
}


def can_decide(principal: Principal) -> bool:
    """Return whether the principal may decide approvals (the approver role, or admin)."""
    return APPROVER_ROLE in principal.roles or principal.has_role(Role.admin)


def to_read(model: AIModel) -> ApprovalRead:
    """Return the approval view of a model row (its `approval*` columns)."""
    return ApprovalRead.model_validate(model, from_attributes=True)


async def get_approval(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID
) -> ApprovalRead:
    """Return the model's approval state and who asked and decided."""
    return to_read(await models.get(session, principal=principal, item_id=model_id))


async def _transition(
    session: AsyncSession,
    *,
    principal: Principal,
    model: AIModel,
    action: str,
    comment: str,
    apply: dict[str, Any],
) -> ApprovalRead:
    """Return the approval after applying `apply` to the model, saved with its history entry."""
    before = models.snapshot(model)
    for field, value in apply.items():
        setattr(model, field, value)
    delta = diff(before, models.snapshot(model))
    delta["comment"] = {"old": None, "new": comment}
    await models.save(session, principal=principal, row=model, action=action, delta=delta)
    return to_read(model)


def _decided_by(principal: Principal, comment: str) -> dict[str, Any]:
    """Return the fields recording who decided, when, and why."""
    return {
        "approval_decided_by": principal.sub,
        "approval_decided_at": utcnow(),
        "approval_decision_comment": comment,
    }


async def _model_to_decide(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID, act: str
) -> AIModel:
    """Return the model locked for a decision; 403 unless the principal may decide (`act`)."""
    if not can_decide(principal):
        raise ForbiddenError(f"{act} needs the approver role (or admin).")
    return await models.get(session, principal=principal, item_id=model_id, for_update=True)


async def request_review(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID, comment: str
) -> ApprovalRead:
    """Return the approval after asking for a review; 409 while one is pending or retired."""
    model = await models.get(session, principal=principal, item_id=model_id, for_update=True)
    state = ApprovalState(model.approval)
    if state in (ApprovalState.in_review, ApprovalState.retired):
        raise ConflictError(
            f"The model is {state.value}; a review cannot be requested now.",
            approval=state.value,
        )
    if model.archived_at is not None:
        raise ConflictError("The model is archived; unarchive it before asking for review.")
    return await _transition(
        session,
        principal=principal,
        model=model,
        action="review_requested",
        comment=comment,
        apply={
            "approval": ApprovalState.in_review.value,
            "approval_requested_by": principal.sub,
            "approval_requested_at": utcnow(),
            "approval_request_comment": comment,
            "approval_decided_by": None,
            "approval_decided_at": None,
            "approval_decision_comment": None,
        },
    )


async def decide(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID, decision: Decision
) -> ApprovalRead:
    """Return the approval after a reviewer's decision (four-eyes for approve and restrict)."""
    model = await _model_to_decide(
        session, principal=principal, model_id=model_id, act="Deciding an approval"
    )
    state = ApprovalState(model.approval)
    if state not in DECIDABLE[decision.decision]:
        raise ConflictError(
            f"The model is {state.value}; it cannot be {decision.decision} from there.",
            approval=state.value,
        )
    if decision.decision != "blocked" and model.approval_requested_by == principal.sub:
        raise ForbiddenError(
            "Four-eyes rule: the person who requested the review cannot decide it.",
            requested_by=model.approval_requested_by,
        )
    return await _transition(
        session,
        principal=principal,
        model=model,
        action=decision.decision,
        comment=decision.comment,
        apply={
            "approval": decision.decision,
            "approval_conditions": (
                decision.conditions.model_dump(mode="json") if decision.conditions else None
            ),
            **_decided_by(principal, decision.comment),
        },
    )


async def retire(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID, comment: str
) -> ApprovalRead:
    """Return the approval after retiring the model for good; 409 when already retired."""
    model = await _model_to_decide(
        session, principal=principal, model_id=model_id, act="Retiring a model"
    )
    if model.approval == ApprovalState.retired:
        raise ConflictError("The model is already retired.", approval="retired")
    return await _transition(
        session,
        principal=principal,
        model=model,
        action="retired",
        comment=comment,
        apply={
            "approval": ApprovalState.retired.value,
            "approval_conditions": None,
            **_decided_by(principal, comment),
        },
    )
