"""The rollout engine: moves every running rollout's waves, in the background of each replica.

Each round claims one rollout at a time with `FOR UPDATE SKIP LOCKED`, so two replicas never
move the same rollout at once and neither waits for the other. Deployments are made, rolled
back and removed through the deployments package (the same gate, dispatch and history as a
person's request), as the principal `rollout:<id>` with no registry token: the policy gate
judges on the deployer's projection.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import KW_ONLY, dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.auth import Principal
from modelyard_common.contracts import CommandAction, DeploymentState, DesiredState
from modelyard_common.db import utcnow
from modelyard_common.errors import PolicyRefusedError, ProblemError, ServiceUnavailableError
from modelyard_common.governance import RegistryConfirmation
from modelyard_common.messaging import Broker
from modelyard_deployer.db import Device, Rollout, RolloutDevice
from modelyard_deployer.deployments import actions
from modelyard_deployer.deployments import repository as deployments
from modelyard_deployer.deployments.deploying import Deploying
from modelyard_deployer.deployments.schemas import MAX_DEVICE_IDS, Deployment, DeploymentCreate
from modelyard_deployer.deployments.service import create_deployments
from modelyard_deployer.governance.service import hold_for_judgement
from modelyard_deployer.rollouts import repository
from modelyard_deployer.rollouts.schemas import AbortRule, RolloutDeviceState, RolloutState
from modelyard_deployer.rollouts.service import pause
from modelyard_deployer.settings import DeployerSettings

log = logging.getLogger("modelyard.deployer.rollouts")

Member = RolloutDevice
S = RolloutDeviceState
IN_WAVE = (S.updating.value, S.healthy.value)


def _offline(device: Device | None, timeout_s: float) -> str | None:
    """Return why a device counts as offline (None: it is online)."""
    if device is None or device.revoked_at is not None:
        return "the device is revoked"
    if device.last_seen_at is None:
        return "the device never sent a heartbeat"
    if device.last_seen_at < utcnow() - timedelta(seconds=timeout_s):
        return (
            f"offline: no heartbeat since {device.last_seen_at.isoformat(timespec='seconds')} "
            f"(more than {timeout_s:g}s)"
        )
    return None


@dataclass(eq=False)
class RolloutEngine:
    """Moves rollouts: starts waves, watches their devices, passes, aborts and rolls back."""

    sessionmaker: async_sessionmaker[AsyncSession]
    _: KW_ONLY
    broker: Broker
    registry: RegistryConfirmation
    settings: DeployerSettings

    async def run_forever(self) -> None:
        """Run a round every `rollout_interval_s`, for as long as the process lives."""
        while True:
            await asyncio.sleep(self.settings.rollout_interval_s)
            try:
                await self.round()
            except Exception as exc:  # the next round tries again
                log.warning("rollout round failed: %s", exc)

    async def round(self) -> int:
        """Return how many rollouts this round moved (those another replica holds are left)."""
        async with self.sessionmaker() as session:
            ids = await repository.moving_ids(session)
        moved = 0
        for rollout_id in ids:
            try:
                async with self.sessionmaker() as session, session.begin():
                    rollout = await repository.claim(session, rollout_id)
                    if rollout is None:
                        continue
                    await self.advance(session, rollout)
                    moved += 1
            except Exception:  # one broken rollout does not hold the others
                log.exception("rollout %s could not move", rollout_id)
        return moved

    def deploying(self, session: AsyncSession, rollout: Rollout) -> Deploying:
        """Return the rollout as a caller of the deployments package."""
        principal = Principal(
            sub=f"rollout:{rollout.id}",
            workspace=rollout.workspace,
            roles=frozenset({"admin"}),
        )
        return Deploying(session, principal, self.registry, self.broker, self.settings, None)

    async def advance(self, session: AsyncSession, rollout: Rollout) -> None:
        """Move the rollout one step: roll back, start its wave, or judge its wave."""
        if rollout.state == RolloutState.aborting:
            await self.roll_back(session, rollout)
        elif rollout.wave_started_at is None:
            await self.start_wave(session, rollout)
        else:
            await self.judge_wave(session, rollout)
        await session.flush()

    async def start_wave(self, session: AsyncSession, rollout: Rollout) -> None:
        """Send the version to the current wave's online devices; skip the offline ones."""
        wave = rollout.current_wave
        timeout_s = float(rollout.spec["offline_timeout_s"])
        members = [
            m
            for m in await repository.devices_of(session, rollout.id, wave=wave)
            if m.state == S.waiting
        ]
        devices = await repository.devices_by_id(session, [m.device_id for m in members])
        sendable: list[Member] = []
        for member in members:
            why = _offline(devices.get(member.device_id), timeout_s)
            if why is None:
                sendable.append(member)
            else:
                self._skip(session, rollout, member, why)
        if sendable:
            # The gate's locks before any row lock (as every request that judges a run).
            await hold_for_judgement(
                session, workspace=rollout.workspace, model_id=rollout.model_id
            )
            live = await deployments.live_on_devices(
                session, device_ids=[m.device_id for m in sendable], model_id=rollout.model_id
            )
            for member in sendable:
                existing = live.get(member.device_id)
                member.had_deployment = existing is not None
                member.previous_version_id = existing.version_id if existing else None
            ids = [m.device_id for m in sendable]
            created: list[Deployment] = []
            try:
                async with session.begin_nested():  # every device of the wave, or none
                    for first in range(0, len(ids), MAX_DEVICE_IDS):
                        body = DeploymentCreate(
                            version_id=rollout.version_id,
                            device_ids=ids[first : first + MAX_DEVICE_IDS],
                        )
                        batch = await create_deployments(
                            self.deploying(session, rollout), body=body
                        )
                        created += batch.items
            except ServiceUnavailableError as exc:
                log.info("rollout %s waits to start wave %d: %s", rollout.id, wave, exc.detail)
                return
            except PolicyRefusedError as exc:
                self._hold(session, rollout, f"policy gate refused wave {wave + 1}: {exc.detail}")
                return
            except ProblemError as exc:
                self._hold(session, rollout, f"wave {wave + 1} could not start: {exc.detail}")
                return
            by_device = {item.device_id: item for item in created}
            for member in sendable:
                member.deployment_id = by_device[member.device_id].id
                member.state = S.updating.value
        rollout.wave_started_at = utcnow()
        rollout.revision += 1
        session.add(
            repository.event(
                rollout,
                "wave_started",
                f"wave {wave + 1}: sent to {len(sendable)} device(s), "
                f"{len(members) - len(sendable)} skipped",
                wave=wave,
            )
        )

    async def judge_wave(self, session: AsyncSession, rollout: Rollout) -> None:
        """Note how the wave's devices fare; pass the wave, or abort by the rule or timeout."""
        wave = rollout.current_wave
        rule = AbortRule.model_validate(rollout.spec["abort"])
        timeout_s = float(rollout.spec["offline_timeout_s"])
        soak = timedelta(seconds=float(rollout.spec["soak_s"]))
        members = await repository.devices_of(session, rollout.id)
        current = [m for m in members if m.wave == wave]
        devices = await repository.devices_by_id(session, [m.device_id for m in current])
        found = await repository.deployments_by_id(
            session, [m.deployment_id for m in current if m.deployment_id is not None]
        )
        now = utcnow()
        for member in current:
            if member.state not in IN_WAVE:
                continue
            deployment = found.get(member.deployment_id) if member.deployment_id else None
            if (
                deployment is None
                or deployment.version_id != rollout.version_id
                or deployment.desired_state != DesiredState.running
            ):
                self._skip(
                    session, rollout, member, "its deployment was changed outside the rollout"
                )
                continue
            state = deployment.state
            if state in (DeploymentState.failed, DeploymentState.rolled_back) and (
                "retrying" not in deployment.state_message
            ):
                member.state = S.failed.value
                member.reason = f"{state}: {deployment.state_message}"[:2000]
                member.healthy_since = None
                session.add(
                    repository.event(
                        rollout,
                        "device_failed",
                        member.reason,
                        wave=wave,
                        device_id=member.device_id,
                    )
                )
            elif (
                state == DeploymentState.running
                and deployment.running_version_id == rollout.version_id
            ):
                if member.state != S.healthy:
                    member.state, member.healthy_since = S.healthy.value, now
            else:
                member.state, member.healthy_since = S.updating.value, None
                why = _offline(devices.get(member.device_id), timeout_s)
                if why is not None:
                    self._skip(session, rollout, member, why)
        judged = [m for m in members if m.state in (S.healthy, S.failed)]
        failed = [m for m in judged if m.state == S.failed]
        if (
            failed
            and len(judged) >= rule.min_devices
            and len(failed) * 100 > rule.failure_percent * len(judged)
        ):
            await self.abort(
                session,
                rollout,
                f"{len(failed)} of {len(judged)} judged device(s) failed "
                f"(the rule allows {rule.failure_percent:g}% after {rule.min_devices})",
            )
            return
        done = all(
            m.state in (S.skipped, S.failed)
            or (
                m.state == S.healthy
                and m.healthy_since is not None
                and m.healthy_since <= now - soak
            )
            for m in current
        )
        if done:
            await self._pass_wave(session, rollout)
            if rollout.state == RolloutState.running:
                await self.start_wave(session, rollout)
            return
        assert rollout.wave_started_at is not None
        if now - rollout.wave_started_at > timedelta(seconds=rule.wave_timeout_s):
            await self.abort(
                session,
                rollout,
                f"wave {wave + 1} did not pass within {rule.wave_timeout_s:g}s",
            )

    async def _pass_wave(self, session: AsyncSession, rollout: Rollout) -> None:
        wave = rollout.current_wave
        session.add(repository.event(rollout, "wave_passed", f"wave {wave + 1} passed", wave=wave))
        rollout.revision += 1
        if wave + 1 >= rollout.wave_count:
            rollout.state = RolloutState.completed.value
            rollout.finished_at = utcnow()
            await repository.release(session, rollout.id)
            session.add(repository.event(rollout, "completed", "every wave passed"))
        else:
            rollout.current_wave, rollout.wave_started_at = wave + 1, None

    async def abort(self, session: AsyncSession, rollout: Rollout, reason: str) -> None:
        """Stop the rollout for `reason` and return its updated devices to what they ran."""
        rollout.state, rollout.reason = RolloutState.aborting.value, reason
        rollout.revision += 1
        session.add(repository.event(rollout, "aborting", reason))
        await self.roll_back(session, rollout)

    async def roll_back(self, session: AsyncSession, rollout: Rollout) -> None:
        """Roll updated devices back (or remove what was not there), then end the rollout."""
        deploying = self.deploying(session, rollout)
        members = await repository.devices_of(session, rollout.id)
        found = await repository.deployments_by_id(
            session, [m.deployment_id for m in members if m.deployment_id is not None]
        )
        for member in members:
            if member.state == S.waiting:
                member.state, member.reason = S.skipped.value, "the rollout ended before its wave"
                continue
            if member.state not in (S.updating, S.healthy, S.failed):
                continue
            deployment = found.get(member.deployment_id) if member.deployment_id else None
            if (
                deployment is None
                or deployment.version_id != rollout.version_id
                or deployment.desired_state == DesiredState.removed
            ):
                continue  # changed outside the rollout since: left as it is
            if not member.had_deployment:
                await self._act(deploying, member, CommandAction.remove)
                member.state = S.removed.value
                member.reason = "the model was not on the device before: removed"
            elif member.previous_version_id not in (None, rollout.version_id):
                if await self._act(deploying, member, CommandAction.rollback):
                    member.state = S.rolled_back.value
                    member.reason = "rolled back to the version it ran before"
                else:
                    await self._act(deploying, member, CommandAction.stop)
                    member.state = S.failed.value
                    member.reason = "stopped: the policy gate refused rolling it back"
            else:
                member.reason = "it ran this version before the rollout: left as it is"
            session.add(
                repository.event(
                    rollout,
                    f"device_{member.state}",
                    member.reason,
                    wave=member.wave,
                    device_id=member.device_id,
                )
            )
        await repository.release(session, rollout.id)
        rollout.state = RolloutState.aborted.value
        rollout.finished_at = utcnow()
        rollout.revision += 1
        session.add(repository.event(rollout, "aborted", rollout.reason))

    async def _act(self, deploying: Deploying, member: Member, action: CommandAction) -> bool:
        """Return whether the action was taken on the member's deployment."""
        assert member.deployment_id is not None
        try:
            async with deploying.session.begin_nested():
                await actions.act(deploying, deployment_id=member.deployment_id, action=action)
        except ProblemError as exc:
            log.warning("rollout could not %s deployment %s: %s", action, member.deployment_id, exc)
            return False
        return True

    def _skip(self, session: AsyncSession, rollout: Rollout, member: Member, reason: str) -> None:
        member.state, member.reason, member.healthy_since = S.skipped.value, reason, None
        session.add(
            repository.event(
                rollout, "device_skipped", reason, wave=member.wave, device_id=member.device_id
            )
        )

    def _hold(self, session: AsyncSession, rollout: Rollout, reason: str) -> None:
        pause(rollout, reason)
        session.add(repository.event(rollout, "paused", reason))
