"""Actions on one deployment: start, stop, restart, roll back, cancel, remove, redeploy.

Start, restart, rollback and redeploy run the model again, so the policy gate judges them like
a new deployment; stop, cancel and remove are always allowed.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.contracts import (
    IN_PROGRESS_STATES,
    CommandAction,
    DeploymentState,
    DesiredState,
)
from modelyard_common.errors import (
    ConflictError,
    UnprocessableError,
    field_error,
)
from modelyard_common.governance import Verdict
from modelyard_deployer.access.schemas import AccessLevel
from modelyard_deployer.db import Deployment, Device, ModelVersion
from modelyard_deployer.deployments import fleet_repository as fleet
from modelyard_deployer.deployments import repository, schemas
from modelyard_deployer.deployments.deploying import Deploying
from modelyard_deployer.deployments.dispatch import Dispatcher
from modelyard_deployer.deployments.policy import judge_one, judged_run
from modelyard_deployer.deployments.views import to_view
from modelyard_deployer.deployments.visibility import visible_deployment
from modelyard_deployer.governance.service import hold_for_judgement
from modelyard_deployer.versions import repository as versions
from modelyard_deployer.versions.service import visible_version

RUNS_AGAIN = frozenset({CommandAction.start, CommandAction.restart, CommandAction.rollback})


async def run_version(
    dispatcher: Dispatcher,
    deployment: Deployment,
    version: ModelVersion,
    *,
    action: CommandAction,
    message: str,
) -> None:
    """Send the deployment to run `version`; the version it had becomes its previous one."""
    if deployment.version_id != version.id:
        deployment.previous_version_id = deployment.version_id
        deployment.version_id = version.id
    deployment.desired_state = DesiredState.running.value
    await dispatcher.dispatch(
        deployment, action=action, message=message, set_state=DeploymentState.pending
    )


async def switch_version(
    dispatcher: Dispatcher, deployment: Deployment, version: ModelVersion, verdict: Verdict
) -> None:
    """Redeploy the deployment to `version`, as the gate's `verdict` lets it run."""
    warning = judged_run(deployment, verdict)
    await run_version(
        dispatcher,
        deployment,
        version,
        action=CommandAction.deploy,
        message=f"redeploy to version {version.number} requested{warning}",
    )


async def actionable(
    session: AsyncSession,
    *,
    principal: Principal,
    deployment_id: uuid.UUID,
    judged: bool = False,
) -> tuple[Deployment, Device]:
    if judged:
        # The gate will judge running it: its locks come before the deployment's row lock.
        model_id = await repository.model_of(
            session, workspace=principal.workspace, deployment_id=deployment_id
        )
        if model_id is not None:
            await hold_for_judgement(session, workspace=principal.workspace, model_id=model_id)
    deployment = await visible_deployment(
        session,
        principal=principal,
        deployment_id=deployment_id,
        level=AccessLevel.deployer,
        for_update=True,
    )
    device = await fleet.get_by_id(session, deployment.device_id)
    if device is None or device.revoked_at is not None:
        raise ConflictError("The deployment's device is revoked; it takes no more commands.")
    return deployment, device


def refuse_removed(deployment: Deployment, action: CommandAction) -> None:
    if deployment.desired_state == DesiredState.removed.value:
        raise ConflictError(
            f"The deployment is removed (or being removed); {action.value} is not possible. "
            "Create a new deployment instead."
        )


async def act(
    deploying: Deploying, *, deployment_id: uuid.UUID, action: CommandAction
) -> schemas.Deployment:
    """Return the deployment after start, stop, restart, rollback, cancel or remove.

    Start, restart and rollback run the model again, so the policy gate judges them like a new
    deployment; stop, cancel and remove are always allowed.
    """
    session, principal = deploying.session, deploying.principal
    deployment, device = await actionable(
        session, principal=principal, deployment_id=deployment_id, judged=action in RUNS_AGAIN
    )
    dispatcher = deploying.dispatcher()
    who = principal.sub
    if action is CommandAction.remove:
        if deployment.desired_state != DesiredState.removed.value:
            deployment.desired_state = DesiredState.removed.value
            await dispatcher.dispatch(deployment, action=action, message=f"remove by {who}")
        return await to_view(session, deployment)
    refuse_removed(deployment, action)
    warning = ""
    if action in RUNS_AGAIN:
        warning = judged_run(deployment, await judge_one(deploying, deployment, device))
    if action in (CommandAction.start, CommandAction.restart):
        deployment.desired_state = DesiredState.running.value
        await dispatcher.dispatch(
            deployment, action=action, message=f"{action.value} by {who}{warning}"
        )
    elif action is CommandAction.stop:
        deployment.desired_state = DesiredState.stopped.value
        await dispatcher.dispatch(deployment, action=action, message=f"stop by {who}")
    elif action is CommandAction.rollback:
        await _rollback(session, dispatcher, deployment, warning)
    elif action is CommandAction.cancel:
        await _cancel(session, dispatcher, deployment)
    else:  # deploy goes through create_deployments / redeploy
        raise UnprocessableError(f"Unknown action {action.value}.")
    return await to_view(session, deployment)


async def _rollback(
    session: AsyncSession, dispatcher: Dispatcher, deployment: Deployment, warning: str = ""
) -> None:
    previous = await versions.get_live(session, deployment.previous_version_id)
    if previous is None:
        raise ConflictError("There is no previous version to roll back to.")
    await run_version(
        dispatcher,
        deployment,
        previous,
        action=CommandAction.rollback,
        message=f"rollback to version {previous.number} by {dispatcher.principal.sub}{warning}",
    )


async def _cancel(session: AsyncSession, dispatcher: Dispatcher, deployment: Deployment) -> None:
    if DeploymentState(deployment.state) not in IN_PROGRESS_STATES:
        raise ConflictError(
            f"Only a deployment in progress can be cancelled; this one is {deployment.state}."
        )
    previous = await versions.get_live(session, deployment.previous_version_id)
    if previous is not None:
        # Back to what ran before: the agent keeps (or restores) the previous version.
        deployment.version_id, deployment.previous_version_id = previous.id, None
        deployment.desired_state = DesiredState.running.value
    else:
        # Nothing ran before: the device should end up with nothing.
        deployment.desired_state = DesiredState.removed.value
    await dispatcher.dispatch(
        deployment,
        action=CommandAction.cancel,
        message=f"cancelled by {dispatcher.principal.sub}",
        set_state=DeploymentState.cancelled,
    )


async def redeploy(
    deploying: Deploying, *, deployment_id: uuid.UUID, body: schemas.Redeploy
) -> schemas.Deployment:
    """Return the deployment after switching it to another version of its model."""
    session, principal = deploying.session, deploying.principal
    deployment, device = await actionable(
        session, principal=principal, deployment_id=deployment_id, judged=True
    )
    refuse_removed(deployment, CommandAction.deploy)
    version = await visible_version(
        session, principal=principal, version_id=body.version_id, level=AccessLevel.deployer
    )
    if version.model_id != deployment.model_id:
        raise UnprocessableError(
            "The version belongs to another model.",
            errors=[
                field_error(
                    ["body", "version_id"],
                    message="not a version of this deployment's model",
                    type="model_mismatch",
                )
            ],
        )
    verdict = await judge_one(deploying, deployment, device)
    await switch_version(deploying.dispatcher(), deployment, version, verdict)
    return await to_view(session, deployment)
