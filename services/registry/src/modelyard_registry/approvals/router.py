"""HTTP routes of model approval: thin, one service call each."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from modelyard_common.auth import CurrentPrincipal, Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.errors import problem_responses
from modelyard_registry.approvals import service
from modelyard_registry.approvals.schemas import ApprovalRead, Decision, Retirement, ReviewRequest

router = APIRouter(prefix="/v1/models/{model_id}/approval", tags=["approvals"])


@router.get(
    "",
    operation_id="get_model_approval",
    summary="A model's approval: state, conditions, who asked and who decided",
    responses=problem_responses(401, 403, 404),
)
async def get_model_approval(
    session: SessionDep, principal: Viewer, model_id: uuid.UUID
) -> ApprovalRead:
    return await service.get_approval(session, principal=principal, model_id=model_id)


@router.post(
    "/request",
    operation_id="request_model_review",
    summary="Ask for a model to be reviewed (editor); it moves to in_review",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def request_model_review(
    session: SessionDep, principal: Editor, model_id: uuid.UUID, body: ReviewRequest
) -> ApprovalRead:
    return await service.request_review(
        session, principal=principal, model_id=model_id, comment=body.comment
    )


@router.post(
    "/decision",
    operation_id="decide_model_approval",
    summary="Approve, restrict or block a model (approver or admin; not the requester)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def decide_model_approval(
    session: SessionDep, principal: CurrentPrincipal, model_id: uuid.UUID, body: Decision
) -> ApprovalRead:
    return await service.decide(session, principal=principal, model_id=model_id, decision=body)


@router.post(
    "/retire",
    operation_id="retire_model",
    summary="Retire a model for good (approver or admin)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def retire_model(
    session: SessionDep, principal: CurrentPrincipal, model_id: uuid.UUID, body: Retirement
) -> ApprovalRead:
    return await service.retire(
        session, principal=principal, model_id=model_id, comment=body.comment
    )
