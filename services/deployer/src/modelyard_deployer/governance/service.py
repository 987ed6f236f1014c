"""The policy gate in the deployer: approvals, under the workspace's gate, judge deployments.

The deployer judges from its projection of `registry.model.*` and `registry.policy.*` events,
so the gate holds while the registry is down. A model whose approval it never heard of, and a
refusal about to be given, are confirmed with the registry through the one shared
`RegistryConfirmation` (the caller's token, the service's one client). A model never heard of
that cannot be confirmed cannot be proven approved: `enforce` refuses with 503, `warn` lets it
through with the warning "of unknown approval".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.errors import PolicyRefusedError, ServiceUnavailableError
from modelyard_common.events import CloudEvent
from modelyard_common.governance import (
    MODEL_EVENT_PREFIX,
    POLICY_UPDATED,
    ApprovalState,
    Gate,
    Governance,
    ModelApprovalEvent,
    RegistryConfirmation,
    Standing,
    Verdict,
    judge_deploy,
)
from modelyard_deployer.db import Device, ModelApproval, RegistryModel, WorkspacePolicy
from modelyard_deployer.governance import models, repository
from modelyard_deployer.settings import DeployerSettings

# The body field that names the model of a deployment (through its version).
MODEL_FIELD = "version_id"


def projection(settings: DeployerSettings) -> Governance:
    """Return the deployer's view of the policy gate (its projection tables)."""
    return Governance(ModelApproval, WorkspacePolicy, default_gate=settings.policy_default_gate)


async def judge_targets(
    session: AsyncSession,
    *,
    registry: RegistryConfirmation,
    model: RegistryModel,
    targets: Sequence[Device],
    authorization: str | None,
) -> dict[uuid.UUID, Verdict]:
    """Return the policy gate's verdict per target device; raise 409 if the gate refuses any.

    Refusal changes nothing: no deployment is created for the devices that would be allowed.
    """

    def judge(standing: Standing) -> dict[uuid.UUID, Verdict]:
        return {
            d.id: judge_deploy(standing, model=model.name, device=d.name, labels=d.labels)
            for d in targets
        }

    async def standing_of(*, fresh: bool) -> Standing:
        return await registry.standing(
            session,
            workspace=model.workspace,
            model_id=model.id,
            authorization=authorization,
            fresh=fresh,
            field=MODEL_FIELD,
        )

    standing = await standing_of(fresh=False)
    verdicts = judge(standing)
    if standing.approval is not None and any(v.reason for v in verdicts.values()):
        # A refusal (or warning) is confirmed with the registry: whoever just approved the
        # model should not wait for its event. If it cannot be asked, the projection holds.
        standing = await standing_of(fresh=True)
        verdicts = judge(standing)
    if standing.approval is None and standing.gate is Gate.enforce:
        raise ServiceUnavailableError(
            f"The approval of model {model.name} is not known here yet and the registry cannot "
            "be asked; the policy gate refuses until it can. Retry shortly."
        )
    refused = [(d, verdicts[d.id]) for d in targets if not verdicts[d.id].allowed]
    if refused:
        first = refused[0][1]
        detail = first.reason or "Refused by policy."
        if len(refused) > 1:
            detail = f"{len(refused)} of {len(targets)} target devices are refused. {detail}"
        raise PolicyRefusedError(
            detail,
            **first.problem_fields(),
            model_id=str(model.id),
            refused=[{"device_id": str(d.id), "reason": v.reason} for d, v in refused],
        )
    return verdicts


async def hold_for_judgement(session: AsyncSession, *, workspace: str, model_id: uuid.UUID) -> None:
    """Keep the model's approval and the workspace's gate from changing until this commits.

    A request that judges a run takes these (shared) before it reads the standing and before
    any row lock; the consumer applying an approval or gate change takes them exclusively
    first. So either the change commits first and the request judges on it, or the request's
    deployments are committed before the consumer looks for deployments let run since the
    change (`deployments.enforcement`): none slips between the two.
    """
    await repository.lock_governance(
        session,
        [
            repository.governance_lock_key(workspace=workspace),
            repository.governance_lock_key(workspace=workspace, model_id=model_id),
        ],
        shared=True,
    )


async def hold_for_change(session: AsyncSession, event: CloudEvent) -> None:
    """Wait for the requests judging on what `event` changes, and hold them off meanwhile."""
    workspace = event.data.get("workspace")
    if not isinstance(workspace, str):
        return
    if event.type == POLICY_UPDATED:
        key = repository.governance_lock_key(workspace=workspace)
    else:
        try:
            model_id = uuid.UUID(str(event.data.get("id")))
        except ValueError:
            return
        key = repository.governance_lock_key(workspace=workspace, model_id=model_id)
    await repository.lock_governance(session, [key], shared=False)


async def apply_registry_event(
    session: AsyncSession, event: CloudEvent, *, gate: Governance
) -> Standing | None:
    """Project one registry event (models and approvals); return a standing to judge anew.

    The returned standing is the model's when its approval changed, or when it stays
    `restricted` (its conditions may have changed); a policy event returns None (the caller
    re-judges the workspace).
    """
    await hold_for_change(session, event)
    await models.apply_registry_event(session, event)
    changed = await gate.apply_event(session, event)
    if event.type == POLICY_UPDATED:
        return None
    return changed if changed is not None else await restricted_anew(session, gate, event)


async def restricted_anew(
    session: AsyncSession, gate: Governance, event: CloudEvent
) -> Standing | None:
    """Return the model's standing when `event` was just applied and leaves it `restricted`.

    `Governance.apply_event` reports approval changes only; a restricted model whose conditions
    change (other labels, other groups) must be judged again as well.
    """
    if not event.type.startswith(MODEL_EVENT_PREFIX):
        return None
    try:
        model = ModelApprovalEvent.model_validate(event.data)
    except ValidationError:
        return None
    if await repository.approval_time(session, model.id) != event.time:
        return None  # an older event than the projection holds, or none applied
    standing = await gate.standing(session, workspace=model.workspace, model_id=model.id)
    return standing if standing.approval is ApprovalState.restricted else None


async def policy_time(session: AsyncSession, workspace: str) -> datetime | None:
    """Return the time of the workspace's gate as projected (None: it never chose one)."""
    return await repository.policy_time(session, workspace)
