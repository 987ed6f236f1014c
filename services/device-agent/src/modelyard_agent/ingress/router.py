"""Ingress routes: `/deployments/{deployment_id}/{path}`, every method, credential required."""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelyard_agent.deps import ProxyClientDep, RoutesDep
from modelyard_agent.ingress import service
from modelyard_common.errors import UnauthorizedError, problem_responses

_bearer = HTTPBearer(auto_error=False, description="The device's ingress credential (`myin_`).")


def require_credential(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """Pass if the caller presents the device's ingress credential; else 401."""
    expected: str = request.app.state.ingress_token
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise UnauthorizedError(
            "This device's ingress needs its credential (Authorization: Bearer myin_...)."
        )


router = APIRouter(prefix="/deployments", tags=["ingress"])


@router.api_route(
    "/{deployment_id}/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    operation_id="forward_to_deployment",
    summary="Forward a request to a running deployment's container (on the device's loopback)",
    response_class=Response,
    responses={200: {"description": "The container's answer."}, **problem_responses(401, 502, 503)},
    dependencies=[Depends(require_credential)],
)
async def forward(
    deployment_id: uuid.UUID,
    path: str,
    request: Request,
    routes: RoutesDep,
    client: ProxyClientDep,
) -> Response:
    return await service.forward(
        routes=routes,
        client=client,
        deployment_id=deployment_id,
        method=request.method,
        path=path,
        query=request.url.query,
        body=await request.body(),
        headers=request.headers,
    )
