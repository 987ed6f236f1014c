"""Rules of deployments: create, redeploy, start, stop, restart, roll back, cancel, remove.

Every action bumps the deployment's `generation` and queues the deployment's whole desired
state for its device through the outbox (in the same transaction as the change), so the device
gets it even if it is offline now, and an older command can never undo a newer one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.contracts import (
    IN_PROGRESS_STATES,
    CommandAction,
    DeploymentState,
    DesiredState,
)
from modelyard_common.db import utcnow
from modelyard_common.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    PolicyRefusedError,
    ServiceUnavailableError,
    UnprocessableError,
)
from modelyard_common.governance import Gate, Standing, Verdict, judge_deploy, judge_running
from modelyard_common.http import make_etag
from modelyard_common.messaging import Broker
from modelyard_common.pagination import PageParams, paginate
from modelyard_deployer.access.schemas import AccessLevel
from modelyard_deployer.access.service import require_access, visible_models
from modelyard_deployer.db import (
    Deployment,
    DeploymentEvent,
    Device,
    ModelVersion,
    RegistryModel,
)
from modelyard_deployer.deployments import messages, reports, repository, schemas
from modelyard_deployer.devices import repository as devices
from modelyard_deployer.devices.service import ensure_device_queue, get_device_row
from modelyard_deployer.registry_models import repository as registry_models
from modelyard_deployer.registry_models.service import (
    hold_for_judgement,
    model_standing,
    require_open_model,
)
from modelyard_deployer.settings import DeployerSettings
from modelyard_deployer.versions import repository as versions
from modelyard_deployer.versions.service import visible_version

log = logging.getLogger("modelyard.deployer.deployments")

SORTS = ("created_at", "updated_at")
HISTORY_SORTS = ("recorded_at",)


async def to_views(session: AsyncSession, rows: Sequence[Deployment]) -> list[schemas.Deployment]:
    """Return the API views of deployments (names and numbers loaded in three queries)."""
    numbers = await repository.version_numbers(session, (d.version_id for d in rows))
    names = await repository.device_names(session, (d.device_id for d in rows))
    models = await repository.model_names(session, (d.model_id for d in rows))
    return [
        schemas.Deployment(
            id=d.id,
            model_id=d.model_id,
            model_name=models.get(d.model_id),
            version_id=d.version_id,
            version_number=numbers[d.version_id],
            previous_version_id=d.previous_version_id,
            running_version_id=d.running_version_id,
            device_id=d.device_id,
            device_name=names.get(d.device_id, ""),
            desired_state=DesiredState(d.desired_state),
            state=DeploymentState(d.state),
            state_message=d.state_message,
            generation=d.generation,
            base_url=d.base_url,
            policy_warning=d.policy_warning,
            created_by=d.created_by,
            created_at=d.created_at,
            updated_at=d.updated_at,
            etag=make_etag(d.revision),
        )
        for d in rows
    ]


async def to_view(session: AsyncSession, deployment: Deployment) -> schemas.Deployment:
    """Return the API view of one deployment."""
    await session.flush()
    await session.refresh(deployment)
    return (await to_views(session, [deployment]))[0]


def history_view(entry: DeploymentEvent) -> schemas.HistoryEntry:
    """Return the API view of a history entry."""
    return schemas.HistoryEntry(
        id=entry.id,
        deployment_id=entry.deployment_id,
        model_id=entry.model_id,
        device_id=entry.device_id,
        version_id=entry.version_id,
        source=entry.source,
        action=CommandAction(entry.action) if entry.action else None,
        state=DeploymentState(entry.state),
        message=entry.message,
        log_tail=entry.log_tail,
        generation=entry.generation,
        sequence=entry.sequence,
        applied=entry.applied,
        actor=entry.actor,
        occurred_at=entry.occurred_at,
        recorded_at=entry.recorded_at,
    )


async def require_model_viewer(
    session: AsyncSession, principal: Principal, model_id: uuid.UUID
) -> None:
    """Raise 404 unless the principal may see the model."""
    await require_access(
        session,
        principal,
        model_id,
        AccessLevel.viewer,
        not_found=f"No model {model_id} you may see in this workspace.",
    )


def _not_found(deployment_id: uuid.UUID) -> NotFoundError:
    return NotFoundError(f"No deployment {deployment_id} you may see in this workspace.")


async def visible_deployment(
    session: AsyncSession,
    *,
    principal: Principal,
    deployment_id: uuid.UUID,
    level: AccessLevel,
    for_update: bool = False,
) -> Deployment:
    """Return a deployment the principal may act on at `level` (404 if it may not see it)."""
    deployment = await repository.get(
        session,
        workspace=principal.workspace,
        deployment_id=deployment_id,
        for_update=for_update,
    )
    if deployment is None:
        raise _not_found(deployment_id)
    await require_access(
        session, principal, deployment.model_id, level, not_found=str(_not_found(deployment_id))
    )
    return deployment


class Dispatcher:
    """Applies one action to deployments and queues the resulting commands."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        broker: Broker,
        settings: DeployerSettings,
        principal: Principal,
    ) -> None:
        self.session = session
        self.broker = broker
        self.settings = settings
        self.principal = principal
        self._declared: set[uuid.UUID] = set()
        # A batch sends one version (and model) to many devices: each is read once.
        self._versions: dict[uuid.UUID, ModelVersion | None] = {}
        self._model_names: dict[uuid.UUID, str] = {}

    async def _declare_queue(self, device_id: uuid.UUID) -> None:
        """Make sure the device's command queue exists, when the broker can be asked now.

        The command itself goes through the outbox, so a broker outage never refuses it: the
        queue was declared when the device registered, and the relay delivers once the broker
        is back (retrying with backoff should the queue be missing).
        """
        if not self.broker.is_connected:
            log.info("broker unreachable: command for device %s waits in the outbox", device_id)
            return
        try:
            await ensure_device_queue(self.broker, self.settings, device_id)
        except ServiceUnavailableError as exc:
            log.warning("command for device %s waits in the outbox: %s", device_id, exc)
            return
        self._declared.add(device_id)

    async def _version(self, version_id: uuid.UUID | None) -> ModelVersion | None:
        if version_id is None:
            return None
        if version_id not in self._versions:
            self._versions[version_id] = await versions.get_any(self.session, version_id)
        return self._versions[version_id]

    async def _model_name(self, model_id: uuid.UUID) -> str:
        if model_id not in self._model_names:
            model = await registry_models.get(self.session, model_id)
            self._model_names[model_id] = model.name if model else str(model_id)
        return self._model_names[model_id]

    async def dispatch(
        self,
        deployment: Deployment,
        *,
        action: CommandAction,
        message: str,
        set_state: DeploymentState | None = None,
        first: bool = False,
    ) -> None:
        """Bump the generation, record the action, and queue the command for the device."""
        session = self.session
        if not first:
            deployment.generation += 1
            deployment.revision += 1
        if set_state is not None and deployment.state != set_state:
            previous_state = deployment.state
            deployment.state = set_state.value
            deployment.state_message = message
            deployment.state_generation = deployment.generation
            await messages.announce_state(
                session, deployment=deployment, previous_state=previous_state, message=message
            )
        elif set_state is not None:
            deployment.state_generation = deployment.generation
        version = await self._version(deployment.version_id)
        assert version is not None
        previous = await self._version(deployment.previous_version_id)
        if previous is not None and previous.deleted_at is not None:
            previous = None
        model_name = await self._model_name(deployment.model_id)
        if deployment.device_id not in self._declared:
            await self._declare_queue(deployment.device_id)
        await messages.send_command(
            session,
            deployment=deployment,
            action=action,
            version=version,
            previous=previous,
            model_name=model_name,
            base_url=self.settings.artifact_base_url,
        )
        session.add(
            repository.deployer_entry(
                deployment, action=action, message=message, actor=self.principal.sub
            )
        )
        await session.flush()


async def _target_devices(
    session: AsyncSession, *, principal: Principal, body: schemas.DeploymentCreate
) -> list[Device]:
    if body.selector is not None:
        found = await devices.matching_selector(
            session, workspace=principal.workspace, selector=body.selector
        )
        if not found:
            raise UnprocessableError(
                "No registered device matches the selector.",
                errors=[
                    FieldError(
                        loc=["body", "selector"],
                        field="selector",
                        message="matches no device",
                        type="no_match",
                    )
                ],
            )
        # Rows are locked device by device: one order (by id) for every request, no deadlock.
        return sorted(found, key=lambda d: d.id)
    wanted = list(dict.fromkeys(body.device_ids or []))
    found = await devices.live_by_ids(session, workspace=principal.workspace, device_ids=wanted)
    known = {d.id for d in found}
    missing = [(i, d) for i, d in enumerate(wanted) if d not in known]
    if missing:
        raise UnprocessableError(
            "Some devices do not exist in this workspace (or are revoked).",
            errors=[
                FieldError(
                    loc=["body", "device_ids", i],
                    field=f"device_ids.{i}",
                    message=f"no device {device_id}",
                    type="not_found",
                )
                for i, device_id in missing
            ],
        )
    return sorted(found, key=lambda d: d.id)


async def judge_targets(
    session: AsyncSession,
    *,
    http: httpx.AsyncClient,
    settings: DeployerSettings,
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

    standing = await model_standing(
        session, http=http, settings=settings, model=model, authorization=authorization
    )
    verdicts = judge(standing)
    if standing.approval is not None and any(v.reason for v in verdicts.values()):
        # A refusal (or warning) is confirmed with the registry: whoever just approved the
        # model should not wait for its event. If it cannot be asked, the projection holds.
        standing = await model_standing(
            session,
            http=http,
            settings=settings,
            model=model,
            authorization=authorization,
            fresh=True,
        )
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


def _flag(deployment: Deployment, verdict: Verdict | None) -> str:
    """Record the gate's warning on the deployment; return it as a suffix for history."""
    warning = verdict.warning if verdict else None
    deployment.policy_warning = warning
    return f" (policy warning: {warning})" if warning else ""


def _judged_run(deployment: Deployment, verdict: Verdict | None) -> str:
    """Record that the gate let the deployment run now (see `enforce_standing`); return `_flag`."""
    deployment.run_judged_at = utcnow()
    return _flag(deployment, verdict)


async def authorize_create(
    session: AsyncSession, *, principal: Principal, body: schemas.DeploymentCreate
) -> None:
    """Raise 404/403 unless the principal may deploy the version (before any replay is read).

    An Idempotency-Key replays the first answer only to someone a fresh request would serve.
    """
    await visible_version(
        session, principal=principal, version_id=body.version_id, level=AccessLevel.deployer
    )


async def create_deployments(
    session: AsyncSession,
    *,
    http: httpx.AsyncClient,
    broker: Broker,
    settings: DeployerSettings,
    principal: Principal,
    body: schemas.DeploymentCreate,
    authorization: str | None,
) -> schemas.DeploymentBatch:
    """Return one deployment per target device: new, redeployed to the version, or unchanged."""
    version = await visible_version(
        session, principal=principal, version_id=body.version_id, level=AccessLevel.deployer
    )
    # Before any row is locked (the model's projection may be written just below).
    await hold_for_judgement(session, workspace=principal.workspace, model_id=version.model_id)
    model = await require_open_model(
        session,
        http=http,
        principal=principal,
        model_id=version.model_id,
        authorization=authorization,
    )
    targets = await _target_devices(session, principal=principal, body=body)
    verdicts = await judge_targets(
        session,
        http=http,
        settings=settings,
        model=model,
        targets=targets,
        authorization=authorization,
    )
    dispatcher = Dispatcher(session, broker=broker, settings=settings, principal=principal)
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
            session.add(deployment)
            try:
                async with session.begin_nested():
                    await session.flush()
            except IntegrityError as exc:
                raise ConflictError(
                    f"A concurrent request deployed this model to device {device.id}; retry."
                ) from exc
            warning = _judged_run(deployment, verdicts[device.id])
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
            _flag(deployment, verdicts[device.id])
        else:
            deployment = existing
            await _switch_version(dispatcher, deployment, version, verdicts[device.id])
        result.append(deployment)
    await session.flush()  # a changed warning on an unchanged deployment, before the re-read
    await repository.reload(session, [d.id for d in result])
    return schemas.DeploymentBatch(items=await to_views(session, result))


async def _switch_version(
    dispatcher: Dispatcher, deployment: Deployment, version: ModelVersion, verdict: Verdict
) -> None:
    if deployment.version_id != version.id:
        deployment.previous_version_id = deployment.version_id
        deployment.version_id = version.id
    deployment.desired_state = DesiredState.running.value
    warning = _judged_run(deployment, verdict)
    await dispatcher.dispatch(
        deployment,
        action=CommandAction.deploy,
        message=f"redeploy to version {version.number} requested{warning}",
        set_state=DeploymentState.pending,
    )


async def _judge_one(
    session: AsyncSession,
    *,
    http: httpx.AsyncClient,
    settings: DeployerSettings,
    principal: Principal,
    deployment: Deployment,
    device: Device,
    authorization: str | None,
) -> Verdict:
    """Return the gate's verdict on running this deployment again (409 when refused)."""
    model = await require_open_model(
        session,
        http=http,
        principal=principal,
        model_id=deployment.model_id,
        authorization=authorization,
    )
    verdicts = await judge_targets(
        session,
        http=http,
        settings=settings,
        model=model,
        targets=[device],
        authorization=authorization,
    )
    return verdicts[device.id]


async def _actionable(
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
    device = await devices.get_by_id(session, deployment.device_id)
    if device is None or device.revoked_at is not None:
        raise ConflictError("The deployment's device is revoked; it takes no more commands.")
    return deployment, device


def _refuse_removed(deployment: Deployment, action: CommandAction) -> None:
    if deployment.desired_state == DesiredState.removed.value:
        raise ConflictError(
            f"The deployment is removed (or being removed); {action.value} is not possible. "
            "Create a new deployment instead."
        )


async def act(
    session: AsyncSession,
    *,
    broker: Broker,
    settings: DeployerSettings,
    principal: Principal,
    deployment_id: uuid.UUID,
    action: CommandAction,
    http: httpx.AsyncClient | None = None,
    authorization: str | None = None,
) -> schemas.Deployment:
    """Return the deployment after start, stop, restart, rollback, cancel or remove.

    Start, restart and rollback run the model again, so the policy gate judges them like a new
    deployment; stop, cancel and remove are always allowed.
    """
    deployment, device = await _actionable(
        session, principal=principal, deployment_id=deployment_id, judged=action in RUNS_AGAIN
    )
    dispatcher = Dispatcher(session, broker=broker, settings=settings, principal=principal)
    who = principal.sub
    if action is CommandAction.remove:
        if deployment.desired_state != DesiredState.removed.value:
            deployment.desired_state = DesiredState.removed.value
            await dispatcher.dispatch(deployment, action=action, message=f"remove by {who}")
        return await to_view(session, deployment)
    _refuse_removed(deployment, action)
    warning = ""
    if action in RUNS_AGAIN:
        if http is None:
            raise ServiceUnavailableError("The registry client is not configured.")
        verdict = await _judge_one(
            session,
            http=http,
            settings=settings,
            principal=principal,
            deployment=deployment,
            device=device,
            authorization=authorization,
        )
        warning = _judged_run(deployment, verdict)
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


RUNS_AGAIN = frozenset({CommandAction.start, CommandAction.restart, CommandAction.rollback})


async def _rollback(
    session: AsyncSession, dispatcher: Dispatcher, deployment: Deployment, warning: str = ""
) -> None:
    previous = (
        await versions.get_any(session, deployment.previous_version_id)
        if deployment.previous_version_id
        else None
    )
    if previous is None or previous.deleted_at is not None:
        raise ConflictError("There is no previous version to roll back to.")
    deployment.previous_version_id, deployment.version_id = deployment.version_id, previous.id
    deployment.desired_state = DesiredState.running.value
    await dispatcher.dispatch(
        deployment,
        action=CommandAction.rollback,
        message=f"rollback to version {previous.number} by {dispatcher.principal.sub}{warning}",
        set_state=DeploymentState.pending,
    )


async def _cancel(session: AsyncSession, dispatcher: Dispatcher, deployment: Deployment) -> None:
    if DeploymentState(deployment.state) not in IN_PROGRESS_STATES:
        raise ConflictError(
            f"Only a deployment in progress can be cancelled; this one is {deployment.state}."
        )
    previous = (
        await versions.get_any(session, deployment.previous_version_id)
        if deployment.previous_version_id
        else None
    )
    if previous is not None and previous.deleted_at is None:
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
    session: AsyncSession,
    *,
    http: httpx.AsyncClient,
    broker: Broker,
    settings: DeployerSettings,
    principal: Principal,
    deployment_id: uuid.UUID,
    body: schemas.Redeploy,
    authorization: str | None,
) -> schemas.Deployment:
    """Return the deployment after switching it to another version of its model."""
    deployment, device = await _actionable(
        session, principal=principal, deployment_id=deployment_id, judged=True
    )
    _refuse_removed(deployment, CommandAction.deploy)
    version = await visible_version(
        session, principal=principal, version_id=body.version_id, level=AccessLevel.deployer
    )
    if version.model_id != deployment.model_id:
        raise UnprocessableError(
            "The version belongs to another model.",
            errors=[
                FieldError(
                    loc=["body", "version_id"],
                    field="version_id",
                    message="not a version of this deployment's model",
                    type="model_mismatch",
                )
            ],
        )
    verdict = await _judge_one(
        session,
        http=http,
        settings=settings,
        principal=principal,
        deployment=deployment,
        device=device,
        authorization=authorization,
    )
    dispatcher = Dispatcher(session, broker=broker, settings=settings, principal=principal)
    await _switch_version(dispatcher, deployment, version, verdict)
    return await to_view(session, deployment)


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
    model_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    version_id: uuid.UUID | None = None,
    state: DeploymentState | None = None,
    desired_state: DesiredState | None = None,
    include_removed: bool = True,
) -> tuple[list[schemas.Deployment], str | None]:
    """Return one page of the deployments the principal may see, filtered."""
    if model_id is not None:
        await require_model_viewer(session, principal, model_id)
    if device_id is not None:
        await get_device_row(session, principal=principal, device_id=device_id)
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
    rows, cursor = await paginate(
        session,
        stmt,
        params=params,
        columns={"created_at": Deployment.created_at, "updated_at": Deployment.updated_at},
        id_column=Deployment.id,
    )
    return await to_views(session, rows), cursor


async def deployment_history(
    session: AsyncSession,
    *,
    principal: Principal,
    params: PageParams,
    deployment_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    source: str | None = None,
) -> tuple[list[schemas.HistoryEntry], str | None]:
    """Return one page of the history of a deployment, or of a model across its devices."""
    if deployment_id is not None:
        await visible_deployment(
            session, principal=principal, deployment_id=deployment_id, level=AccessLevel.viewer
        )
    if model_id is not None:
        await require_model_viewer(session, principal, model_id)
    stmt = repository.history_statement(
        workspace=principal.workspace,
        deployment_id=deployment_id,
        model_id=model_id,
        device_id=device_id,
        source=source,
    )
    rows, cursor = await paginate(
        session,
        stmt,
        params=params,
        columns={"recorded_at": DeploymentEvent.id},
        id_column=DeploymentEvent.id,
    )
    return [history_view(row) for row in rows], cursor


async def announce_model_endpoints(
    session: AsyncSession, *, settings: DeployerSettings, principal: Principal, model_id: uuid.UUID
) -> int:
    """Return how many running endpoints of a model were announced again."""
    await require_model_viewer(session, principal, model_id)
    return await reports.reannounce_model(
        session, settings=settings, workspace=principal.workspace, model_id=model_id
    )


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
