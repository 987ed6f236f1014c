"""HTTP routes of model approval: thin, one service call each."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from modelyard_common.auth import CurrentPrincipal, Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.routes import Routes
from modelyard_registry.approvals import service
from modelyard_registry.approvals.schemas import ApprovalRead, Decision, Retirement, ReviewRequest
from modelyard_registry.deps import AUTH_PROBLEMS

router = APIRouter(prefix="/v1/models/{model_id}/approval", tags=["approvals"])
approval = Routes(router)  # the approval is the item: its prefix names it
# Asking for a review, deciding and retiring are actions on the approval; each may conflict.
ACTION_PROBLEMS = (*AUTH_PROBLEMS, 404, 409, 422)


@approval.reading(
    "get_model_approval",
    "A model's approval: state, conditions, who asked and who decided",
    problems=(*AUTH_PROBLEMS, 404),
)
async def get_model_approval(
    session: SessionDep, principal: Viewer, model_id: uuid.UUID
) -> ApprovalRead:
    return await service.get_approval(session, principal=principal, model_id=model_id)


@approval.acting(
    "request_model_review",
    "Ask for a model to be reviewed (editor); it moves to in_review",
    problems=ACTION_PROBLEMS,
    subpath="/request",
)
async def request_model_review(
    session: SessionDep, principal: Editor, model_id: uuid.UUID, body: ReviewRequest
) -> ApprovalRead:
    return await service.request_review(
        session, principal=principal, model_id=model_id, comment=body.comment
    )


@approval.acting(
    "decide_model_approval",
    "Approve, restrict or block a model (approver or admin; not the requester)",
    problems=ACTION_PROBLEMS,
    subpath="/decision",
)
async def decide_model_approval(
    session: SessionDep, principal: CurrentPrincipal, model_id: uuid.UUID, body: Decision
) -> ApprovalRead:
    return await service.decide(session, principal=principal, model_id=model_id, decision=body)


@approval.acting(
    "retire_model",
    "Retire a model for good (approver or admin)",
    problems=ACTION_PROBLEMS,
    subpath="/retire",
)
async def retire_model(
    session: SessionDep, principal: CurrentPrincipal, model_id: uuid.UUID, body: Retirement
) -> ApprovalRead:
    return await service.retire(
        session, principal=principal, model_id=model_id, comment=body.comment
    )
