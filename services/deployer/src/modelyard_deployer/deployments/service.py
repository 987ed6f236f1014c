"""Use cases of deployments: deploy a version to devices, read them and their history.

The actions on one deployment are in `actions`; what reports change is in `reports`.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.contracts import CommandAction, DeploymentState, DesiredState
from modelyard_common.pagination import Page, PageParams
from modelyard_deployer.access.schemas import AccessLevel
from modelyard_deployer.access.service import require_model_access, visible_models
from modelyard_deployer.db import Deployment, add_unique
from modelyard_deployer.deployments import endpoints, repository, schemas
from modelyard_deployer.deployments.actions import switch_version
from modelyard_deployer.deployments.deploying import Deploying
from modelyard_deployer.deployments.policy import flag, judged_run
from modelyard_deployer.deployments.targeting import target_devices
from modelyard_deployer.deployments.views import history_view, to_views
from modelyard_deployer.deployments.visibility import require_device, visible_deployment
from modelyard_deployer.governance.service import hold_for_judgement
from modelyard_deployer.settings import DeployerSettings
from modelyard_deployer.versions.service import visible_version


async def authorize_create(
    session: AsyncSession, *, principal: Principal, body: schemas.DeviceTargets
) -> None:
    """Raise 404/403 unless the principal may deploy the version (before any replay is read):
    a deployment's or a rollout's.

    An Idempotency-Key replays the first answer only to someone a fresh request would serve.
    """
    await visible_version(
        session, principal=principal, version_id=body.version_id, level=AccessLevel.deployer
    )


async def create_deployments(
    deploying: Deploying, *, body: schemas.DeploymentCreate
) -> schemas.DeploymentBatch:
    """Return one deployment per target device: new, redeployed to the version, or unchanged."""
    session, principal = deploying.session, deploying.principal
    version = await visible_version(
        session, principal=principal, version_id=body.version_id, level=AccessLevel.deployer
    )
    # Before any row is locked (the model's projection may be written just below).
    await hold_for_judgement(session, workspace=principal.workspace, model_id=version.model_id)
    model = await deploying.open_model(version.model_id)
    targets = await target_devices(session, principal=principal, body=body)
    verdicts = await deploying.judge(model, targets)
    dispatcher = deploying.dispatcher()
    # One query for every target's current deployment, not one per device (fleets are large).
    live = await repository.live_on_devices(
        session, device_ids=[d.id for d in targets], model_id=version.model_id
    )
    result: list[Deployment] = []
    for device in targets:
        existing = live.get(device.id)
        if existing is None:
            deployment = Deployment(
                workspace=principal.workspace,
                model_id=version.model_id,
                device_id=device.id,
                version_id=version.id,
                desired_state=DesiredState.running.value,
                state=DeploymentState.pending.value,
                state_message="",
                generation=1,
                state_generation=1,
                last_sequence=0,
                created_by=principal.sub,
            )
            await add_unique(
                session,
                deployment,
                conflict=f"A concurrent request deployed this model to device {device.id}; retry.",
            )
            warning = judged_run(deployment, verdicts[device.id])
            await dispatcher.dispatch(
                deployment,
                action=CommandAction.deploy,
                message=f"deploy of version {version.number} requested{warning}",
                first=True,
            )
        elif (
            existing.version_id == version.id
            and existing.desired_state == DesiredState.running.value
        ):
            deployment = existing  # already what was asked: nothing to send
            flag(deployment, verdicts[device.id])
        else:
            deployment = existing
            await switch_version(dispatcher, deployment, version, verdicts[device.id])
        result.append(deployment)
    await session.flush()  # a changed warning on an unchanged deployment, before the re-read
    await repository.reload(session, [d.id for d in result])
    return schemas.DeploymentBatch(items=await to_views(session, result))


async def get_deployment(
    session: AsyncSession, *, principal: Principal, deployment_id: uuid.UUID
) -> schemas.Deployment:
    """Return one deployment."""
    deployment = await visible_deployment(
        session, principal=principal, deployment_id=deployment_id, level=AccessLevel.viewer
    )
    return (await to_views(session, [deployment]))[0]


async def list_deployments(
    session: AsyncSession,
    *,
    principal: Principal,
    params: PageParams,
    state: DeploymentState | None = None,
    desired_state: DesiredState | None = None,
    model_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    version_id: uuid.UUID | None = None,
    include_removed: bool = True,
) -> Page[schemas.Deployment]:
    """Return one page of the deployments the principal may see, filtered."""
    if model_id is not None:
        await require_model_access(session, principal, model_id)
    if device_id is not None:
        await require_device(session, principal=principal, device_id=device_id)
    stmt = repository.list_statement(
        workspace=principal.workspace,
        visible=visible_models(principal, Deployment.model_id),
        model_id=model_id,
        device_id=device_id,
        version_id=version_id,
        state=state.value if state else None,
        desired_state=desired_state.value if desired_state else None,
        include_removed=include_removed,
    )
    rows, cursor = await repository.SORTING.page(session, stmt, params)
    return Page[schemas.Deployment](items=await to_views(session, rows), next_cursor=cursor)


async def deployment_history(
    session: AsyncSession,
    *,
    principal: Principal,
    params: PageParams,
    deployment_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    source: str | None = None,
) -> Page[schemas.HistoryEntry]:
    """Return one page of the history of a deployment, or of a model across its devices."""
    if deployment_id is not None:
        await visible_deployment(
            session, principal=principal, deployment_id=deployment_id, level=AccessLevel.viewer
        )
    if model_id is not None:
        await require_model_access(session, principal, model_id)
    stmt = repository.history_statement(
        workspace=principal.workspace,
        deployment_id=deployment_id,
        model_id=model_id,
        device_id=device_id,
        source=source,
    )
    rows, cursor = await repository.HISTORY_SORTING.page(session, stmt, params)
    return Page[schemas.HistoryEntry](items=[history_view(row) for row in rows], next_cursor=cursor)


async def announce_model_endpoints(
    session: AsyncSession, *, settings: DeployerSettings, principal: Principal, model_id: uuid.UUID
) -> int:
    """Return how many running endpoints of a model were announced again."""
    await require_model_access(session, principal, model_id)
    return await endpoints.reannounce_model(
        session, settings=settings, workspace=principal.workspace, model_id=model_id
    )
