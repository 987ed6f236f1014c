"""Use cases of rollouts: create one, read them and their history, pause, resume, abort.

The waves themselves are moved by the background `engine`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.errors import ConflictError, NotFoundError
from modelyard_common.pagination import Page, PageParams
from modelyard_deployer.access.schemas import AccessLevel
from modelyard_deployer.access.service import require_model_access, visible_models
from modelyard_deployer.db import Rollout, RolloutDevice, add_unique
from modelyard_deployer.deployments.deploying import Deploying
from modelyard_deployer.deployments.schemas import DeploymentCreate
from modelyard_deployer.deployments.targeting import target_devices
from modelyard_deployer.governance.service import hold_for_judgement
from modelyard_deployer.rollouts import repository, schemas
from modelyard_deployer.rollouts.planning import plan_waves
from modelyard_deployer.rollouts.schemas import RolloutDeviceState, RolloutState
from modelyard_deployer.rollouts.views import rollout_view, summary
from modelyard_deployer.versions.service import visible_version


def _busy(devices: list[tuple[uuid.UUID, str, uuid.UUID]]) -> ConflictError:
    names = ", ".join(f"{name} ({device_id})" for device_id, name, _ in devices[:10])
    which = f"Device {names} is" if len(devices) == 1 else f"Devices {names} are"
    return ConflictError(
        f"{which} already in an unfinished rollout; finish or abort it first.",
        devices=[
            {"device_id": str(d), "device_name": n, "rollout_id": str(r)} for d, n, r in devices
        ],
    )


async def create_rollout(deploying: Deploying, *, body: schemas.RolloutCreate) -> schemas.Rollout:
    """Return a new rollout, its devices planned in waves (the gate judged them all now)."""
    session, principal = deploying.session, deploying.principal
    version = await visible_version(
        session, principal=principal, version_id=body.version_id, level=AccessLevel.deployer
    )
    await hold_for_judgement(session, workspace=principal.workspace, model_id=version.model_id)
    model = await deploying.open_model(version.model_id)
    target = DeploymentCreate(
        version_id=body.version_id, device_ids=body.device_ids, selector=body.selector
    )
    targets = await target_devices(session, principal=principal, body=target)
    # The policy gate at creation: refuses (409) if it would refuse any target now.
    await deploying.judge(model, targets)
    busy = await repository.active_on_devices(session, [d.id for d in targets])
    if busy:
        raise _busy(busy)
    waves = plan_waves(targets, body.waves)
    rollout = Rollout(
        workspace=principal.workspace,
        model_id=version.model_id,
        version_id=version.id,
        spec=body.model_dump(mode="json"),
        state=RolloutState.running.value,
        reason="",
        current_wave=0,
        wave_count=len(waves),
        created_by=principal.sub,
    )
    session.add(rollout)
    await session.flush()
    for index, devices in enumerate(waves):
        for device in devices:
            session.add(
                RolloutDevice(
                    rollout_id=rollout.id,
                    device_id=device.id,
                    wave=index,
                    active=True,
                    state=RolloutDeviceState.waiting.value,
                    reason="",
                )
            )
    sizes = ", ".join(str(len(w)) for w in waves)
    created = repository.event(
        rollout,
        "created",
        f"version {version.number} to {len(targets)} device(s) in waves of {sizes}",
        actor=principal.sub,
    )
    # Flushes the devices too: a concurrent rollout that took one since the check is a 409.
    await add_unique(
        session,
        created,
        conflict="A concurrent rollout took some of these devices; retry to see which.",
    )
    return await rollout_view(session, rollout)


async def _visible(
    session: AsyncSession,
    *,
    principal: Principal,
    rollout_id: uuid.UUID,
    level: AccessLevel = AccessLevel.viewer,
    for_update: bool = False,
) -> Rollout:
    rollout = await repository.get(
        session, workspace=principal.workspace, rollout_id=rollout_id, for_update=for_update
    )
    if rollout is None:
        raise NotFoundError(f"No rollout {rollout_id} in this workspace.")
    await require_model_access(session, principal, rollout.model_id, level)
    return rollout


async def get_rollout(
    session: AsyncSession, *, principal: Principal, rollout_id: uuid.UUID
) -> schemas.Rollout:
    """Return one rollout with its waves and devices."""
    rollout = await _visible(session, principal=principal, rollout_id=rollout_id)
    return await rollout_view(session, rollout)


async def list_rollouts(
    session: AsyncSession,
    *,
    principal: Principal,
    params: PageParams,
    state: RolloutState | None = None,
    model_id: uuid.UUID | None = None,
) -> Page[schemas.RolloutSummary]:
    """Return one page of the rollouts the principal may see, filtered."""
    if model_id is not None:
        await require_model_access(session, principal, model_id)
    stmt = repository.list_statement(
        workspace=principal.workspace,
        visible=visible_models(principal, Rollout.model_id),
        state=state.value if state else None,
        model_id=model_id,
    )
    rows, cursor = await repository.SORTING.page(session, stmt, params)
    return Page[schemas.RolloutSummary](items=[summary(r) for r in rows], next_cursor=cursor)


async def rollout_history(
    session: AsyncSession, *, principal: Principal, rollout_id: uuid.UUID, params: PageParams
) -> Page[schemas.RolloutEvent]:
    """Return one page of a rollout's history."""
    await _visible(session, principal=principal, rollout_id=rollout_id)
    rows, cursor = await repository.HISTORY_SORTING.page(
        session, repository.history_statement(rollout_id), params
    )
    return Page[schemas.RolloutEvent](
        items=[schemas.RolloutEvent.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=cursor,
    )


@dataclass(frozen=True)
class RolloutAction:
    """A person's action on a rollout: the states it is taken in, the refusal in any other (with
    `{state}`), and the change it makes (given the rollout and who acts, it returns the event
    kind and message recorded)."""

    allowed: tuple[RolloutState, ...]
    refusal: str
    change: Callable[[Rollout, str], tuple[str, str]]


async def act(
    session: AsyncSession, *, principal: Principal, rollout_id: uuid.UUID, action: RolloutAction
) -> schemas.Rollout:
    """Return the rollout after `action`, taken with it locked and recorded as the principal's."""
    rollout = await _visible(
        session,
        principal=principal,
        rollout_id=rollout_id,
        level=AccessLevel.deployer,
        for_update=True,
    )
    if rollout.state not in action.allowed:
        raise ConflictError(action.refusal.format(state=rollout.state))
    kind, message = action.change(rollout, principal.sub)
    rollout.revision += 1
    session.add(repository.event(rollout, kind, message, actor=principal.sub))
    await session.flush()
    return await rollout_view(session, rollout)


def pause(rollout: Rollout, reason: str) -> None:
    """Hold the rollout with `reason` (the engine's pause: a policy refusal)."""
    _hold(rollout, reason)
    rollout.revision += 1


def _hold(rollout: Rollout, reason: str) -> None:
    rollout.state = RolloutState.paused.value
    rollout.reason = reason
    rollout.paused_at = utcnow()


def _held(rollout: Rollout, who: str) -> tuple[str, str]:
    """Hold the rollout where it is (no new wave starts, no wave times out)."""
    _hold(rollout, f"paused by {who}")
    return "paused", rollout.reason


def _moving(rollout: Rollout, who: str) -> tuple[str, str]:
    """Move the rollout again; its current wave's timeout discounts the pause."""
    now = utcnow()
    if rollout.wave_started_at is not None and rollout.paused_at is not None:
        rollout.wave_started_at += now - rollout.paused_at
    rollout.state, rollout.reason, rollout.paused_at = RolloutState.running.value, "", None
    return "resumed", f"resumed by {who}"


def _stopping(rollout: Rollout, who: str) -> tuple[str, str]:
    """Stop the rollout: the engine returns its updated devices to what they ran."""
    rollout.state = RolloutState.aborting.value
    rollout.reason = f"aborted by {who}"
    return "aborting", rollout.reason


# By the name of the route that takes each (`/v1/rollouts/{id}/<name>`).
ACTIONS = {
    "pause": RolloutAction(
        allowed=(RolloutState.running,),
        refusal="Only a running rollout can be paused; this one is {state}.",
        change=_held,
    ),
    "resume": RolloutAction(
        allowed=(RolloutState.paused,),
        refusal="Only a paused rollout can be resumed; this one is {state}.",
        change=_moving,
    ),
    "abort": RolloutAction(
        allowed=(RolloutState.running, RolloutState.paused),
        refusal="The rollout is {state}; there is nothing to abort.",
        change=_stopping,
    ),
}
