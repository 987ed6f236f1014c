"""FastAPI dependencies shared by the admin routers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from modelyard_common.db import SessionDep
from modelyard_common.governance import Governance
from modelyard_gateway.db import ModelApproval, WorkspacePolicy
from modelyard_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from modelyard_gateway.runtime.runner import Runtime


def get_runtime(request: Request) -> Runtime:
    """Return the gateway runtime started by the app's lifespan."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]


def governance(settings: GatewaySettings) -> Governance:
    """Return the gateway's view of the policy gate (its projection tables)."""
    return Governance(ModelApproval, WorkspacePolicy, default_gate=settings.policy_default_gate)


def get_governance(request: Request) -> Governance:
    """Return the policy gate's projection, for the admin routes."""
    return governance(request.app.state.settings)


GovernanceDep = Annotated[Governance, Depends(get_governance)]

__all__ = [
    "GovernanceDep",
    "RuntimeDep",
    "SessionDep",
    "get_governance",
    "get_runtime",
    "governance",
]
