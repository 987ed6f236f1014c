"""Ingress routes: `/deployments/{deployment_id}/{path}`, every method, credential required."""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelyard_agent.agent import Agent
from modelyard_agent.ingress import service
from modelyard_common.errors import UnauthorizedError, problem_responses

_bearer = HTTPBearer(auto_error=False, description="The device's ingress credential (`myin_`).")


def authorized_agent(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Agent:
    """Return the agent if the caller presents the device's ingress credential; else 401."""
    agent: Agent = request.app.state.agent
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), agent.ingress_token.encode()):
        raise UnauthorizedError(
            "This device's ingress needs its credential (Authorization: Bearer myin_...)."
        )
    return agent


router = APIRouter(prefix="/deployments", tags=["ingress"])


@router.api_route(
    "/{deployment_id}/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    operation_id="forward_to_deployment",
    summary="Forward a request to a running deployment's container (on the device's loopback)",
    response_class=Response,
    responses={200: {"description": "The container's answer."}, **problem_responses(401, 502, 503)},
)
async def forward(
    deployment_id: uuid.UUID,
    path: str,
    request: Request,
    agent: Annotated[Agent, Depends(authorized_agent)],
) -> Response:
    return await service.forward(
        agent=agent,
        deployment_id=deployment_id,
        method=request.method,
        path=path,
        query=request.url.query,
        body=await request.body(),
        headers=request.headers,
    )
