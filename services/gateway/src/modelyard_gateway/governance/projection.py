"""The gateway's projection of the registry's approvals and gates, and how requests reach it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from modelyard_common.governance import Governance, RegistryConfirmation
from modelyard_gateway.db import ModelApproval, WorkspacePolicy
from modelyard_gateway.settings import GatewaySettings


def projection(settings: GatewaySettings) -> Governance:
    """Return the gateway's view of the policy gate (its projection tables)."""
    return Governance(ModelApproval, WorkspacePolicy, default_gate=settings.policy_default_gate)


def get_confirmation(request: Request) -> RegistryConfirmation:
    """Return the projection confirmed with the registry, built by the app's lifespan."""
    confirmation: RegistryConfirmation = request.app.state.confirmation
    return confirmation


def get_projection(request: Request) -> Governance:
    """Return the policy gate's projection, for the admin routes."""
    return get_confirmation(request).projection


ConfirmationDep = Annotated[RegistryConfirmation, Depends(get_confirmation)]
ProjectionDep = Annotated[Governance, Depends(get_projection)]
