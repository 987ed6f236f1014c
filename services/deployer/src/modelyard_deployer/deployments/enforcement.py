"""Re-judging what runs when the registry changes a model's approval or a workspace's gate.

Runs in the consumer's transaction of the registry event (`consumer`), once per event.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.contracts import CommandAction, DesiredState
from modelyard_common.events import CloudEvent
from modelyard_common.governance import (
    POLICY_UPDATED,
    Governance,
    Standing,
    judge_deploy,
    judge_running,
    standing_of,
)
from modelyard_common.messaging import Broker
from modelyard_deployer.deployments import repository
from modelyard_deployer.deployments.dispatch import Dispatcher
from modelyard_deployer.governance import service as governance
from modelyard_deployer.settings import DeployerSettings

log = logging.getLogger("modelyard.deployer.deployments")

POLICY_ACTOR = "policy-gate"


async def enforce_standing(
    session: AsyncSession,
    *,
    broker: Broker,
    settings: DeployerSettings,
    workspace: str,
    model_id: uuid.UUID,
    model_name: str,
    standing: Standing,
    changed_since: datetime | None = None,
    window_only: bool = False,
) -> int:
    """Apply a model's new approval to its running deployments; return how many were stopped.

    Under `enforce` a deployment the approval no longer allows (blocked, retired, or restricted
    to labels its device lacks) is stopped through the outbox like any stop; under `warn` it
    keeps running and is flagged, with a history entry; a flag the approval no longer warrants
    is cleared. Runs in the consumer's transaction, so it happens once per registry event.

    `changed_since` closes the window between a change in the registry and its event here: a
    deployment the gate let run at or after that time was judged on an approval the deployer
    had not heard the change of, so it is judged again as a new deployment would be
    (`judge_deploy`: a model sent back to draft may not start), not as one that ran before.
    With `window_only`, only those are judged (a gate change re-judging other models).
    """
    principal = Principal(sub=POLICY_ACTOR, workspace=workspace, roles=frozenset({"admin"}))
    dispatcher = Dispatcher(session, broker=broker, settings=settings, principal=principal)
    stopped = 0
    for deployment, device in await repository.running_of_model(
        session, workspace=workspace, model_id=model_id
    ):
        in_window = (
            changed_since is not None
            and deployment.run_judged_at is not None
            and deployment.run_judged_at >= changed_since
        )
        if window_only and not in_window:
            continue
        judge = judge_deploy if in_window else judge_running
        verdict = judge(standing, model=model_name, device=device.name, labels=device.labels)
        late = (
            " (it was let run after the approval changed, before the deployer heard of it)"
            if in_window
            else ""
        )
        if not verdict.allowed:
            deployment.desired_state = DesiredState.stopped.value
            deployment.policy_warning = None
            await dispatcher.dispatch(
                deployment,
                action=CommandAction.stop,
                message=f"stopped by the policy gate: {verdict.reason}{late}",
            )
            stopped += 1
        elif verdict.warning != deployment.policy_warning:
            deployment.policy_warning = verdict.warning
            message = (
                f"policy warning (gate is warn, so it keeps running): {verdict.warning}{late}"
                if verdict.warning
                else "policy warning cleared: the approval allows it again"
            )
            session.add(repository.deployer_entry(deployment, message=message, actor=POLICY_ACTOR))
    await session.flush()
    if stopped:
        log.warning("policy gate stopped %d deployment(s) of model %s", stopped, model_id)
    return stopped


async def judged_since(
    session: AsyncSession, *, workspace: str, since: datetime
) -> list[uuid.UUID]:
    """Return the models with deployments the gate let run at or after `since`."""
    return await repository.models_judged_since(session, workspace=workspace, since=since)


async def rejudge(
    session: AsyncSession, event: CloudEvent, *, broker: Broker, settings: DeployerSettings
) -> None:
    """Project one registry event, and apply the policy gate to what runs if it changed.

    A model's approval change (or new conditions of a restricted one) re-judges its running
    deployments; a workspace's gate change re-judges every model of that workspace that is
    blocked, retired or restricted.
    """
    gate = governance.projection(settings)
    standing = await governance.apply_registry_event(session, event, gate=gate)
    # Deployments let run from this moment on were judged on the approval (or gate) as it was
    # before this event: they are judged again as new ones (see `enforce_standing`).
    since = event.time - timedelta(seconds=settings.policy_clock_skew_s)
    if event.type == POLICY_UPDATED:
        await _rejudge_workspace(
            session,
            broker=broker,
            settings=settings,
            gate=gate,
            workspace=str(event.data.get("workspace")),
            event_time=event.time,
            since=since,
        )
        return
    if standing is None:
        return
    model_id = uuid.UUID(str(event.data["id"]))  # validated by the projection
    await enforce_standing(
        session,
        broker=broker,
        settings=settings,
        workspace=str(event.data["workspace"]),
        model_id=model_id,
        model_name=standing.model_name or str(model_id),
        standing=standing,
        changed_since=since,
    )


async def _rejudge_workspace(
    session: AsyncSession,
    *,
    broker: Broker,
    settings: DeployerSettings,
    gate: Governance,
    workspace: str,
    event_time: datetime,
    since: datetime,
) -> None:
    policy = await gate.gate(session, workspace)
    # A late policy event (an older one than the gate applied) opens no window.
    latest = await governance.policy_time(session, workspace) == event_time
    judged = {row.model_id: row for row in await gate.constrained(session, workspace)}
    for row in judged.values():
        await enforce_standing(
            session,
            broker=broker,
            settings=settings,
            workspace=workspace,
            model_id=row.model_id,
            model_name=row.name,
            standing=standing_of(row, policy),
            changed_since=since if latest else None,
        )
    window = await judged_since(session, workspace=workspace, since=since) if latest else []
    for model_id in window:
        if model_id in judged:
            continue
        current = await gate.standing(session, workspace=workspace, model_id=model_id)
        await enforce_standing(
            session,
            broker=broker,
            settings=settings,
            workspace=workspace,
            model_id=model_id,
            model_name=current.model_name or str(model_id),
            standing=current,
            changed_since=since,
            window_only=True,
        )
