"""HTTP routes of a system's AI Act obligations: thin, one service call each."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response

from modelyard_common.auth import Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.http import IfMatch
from modelyard_common.routes import Routes, with_etag
from modelyard_registry.deps import AUTH_PROBLEMS
from modelyard_registry.obligations import service
from modelyard_registry.obligations.schemas import ObligationRead, ObligationUpdate

router = APIRouter(prefix="/v1/systems/{system_id}/obligations", tags=["obligations"])
obligations = Routes(router, item="/{code}")
Code = Annotated[str, Path(max_length=64, pattern=r"^[a-z_]+$")]


@obligations.listing(
    "list_system_obligations",
    "The system's AI Act obligations for its risk level and role, with their status",
    problems=(*AUTH_PROBLEMS, 404),
)
async def list_system_obligations(
    session: SessionDep, principal: Viewer, system_id: uuid.UUID
) -> list[ObligationRead]:
    return await service.list_obligations(session, principal=principal, system_id=system_id)


@obligations.changing(
    "update_system_obligation",
    "Change an obligation's status, owner, evidence or note (send If-Match)",
    problems=(*AUTH_PROBLEMS, 404, 409, 412, 422, 428),
)
async def update_system_obligation(
    session: SessionDep,
    principal: Editor,
    system_id: uuid.UUID,
    code: Code,
    body: ObligationUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> ObligationRead:
    read = await service.update_obligation(
        session, principal=principal, system_id=system_id, code=code, body=body, if_match=if_match
    )
    return with_etag(response, read)
