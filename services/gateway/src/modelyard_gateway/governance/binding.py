"""The bind judgement: may a group be bound to (or renamed while bound to) a registry model."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.errors import PolicyRefusedError, ServiceUnavailableError
from modelyard_common.governance import (
    Gate,
    Governance,
    RegistryConfirmation,
    Verdict,
    judge_bind,
)
from modelyard_common.http import AuthorizationHeader
from modelyard_gateway.governance.projection import ConfirmationDep


@dataclass(frozen=True, slots=True)
class BindingGate:
    """The gate as one admin request meets it: the confirmed projection and the caller's token."""

    confirmation: RegistryConfirmation
    authorization: str | None = None

    @property
    def projection(self) -> Governance:
        """Return the projection the gate judges from."""
        return self.confirmation.projection

    async def judge(
        self, session: AsyncSession, *, workspace: str, model_id: uuid.UUID, group: str
    ) -> Verdict:
        """Return the gate's verdict on serving `model_id` as `group`; 409 when it refuses.

        The registry is asked (as the caller) when the projection never heard of the model
        (422 `registry_model_id` when it does not show it) and again before a refusal.
        """
        standing = await self.confirmation.standing(
            session, workspace=workspace, model_id=model_id, authorization=self.authorization
        )
        verdict = judge_bind(standing, model=standing.model_name or str(model_id), group=group)
        if standing.approval is not None and verdict.reason:
            # Confirmed with the registry: an approval made a moment ago may not have arrived yet.
            standing = await self.confirmation.standing(
                session,
                workspace=workspace,
                model_id=model_id,
                authorization=self.authorization,
                fresh=True,
            )
            verdict = judge_bind(standing, model=standing.model_name or str(model_id), group=group)
        if standing.approval is None and standing.gate is Gate.enforce:
            raise ServiceUnavailableError(
                f"The approval of model {model_id} is not known here and the registry cannot be "
                "asked; the policy gate refuses the binding until it can. Retry shortly."
            )
        if not verdict.allowed:
            raise PolicyRefusedError(
                verdict.reason, **verdict.problem_fields(), model_id=str(model_id)
            )
        return verdict


def binding_gate(
    confirmation: ConfirmationDep, authorization: AuthorizationHeader = None
) -> BindingGate:
    """Return the gate for this request (the registry is asked with the caller's token)."""
    return BindingGate(confirmation, authorization)


BindingGateDep = Annotated[BindingGate, Depends(binding_gate)]
