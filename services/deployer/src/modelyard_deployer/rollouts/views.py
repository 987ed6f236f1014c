"""A rollout as the API shows it: its waves' progress and each device's."""

from __future__ import annotations

from collections import Counter

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_deployer.db import Rollout, RolloutDevice
from modelyard_deployer.rollouts import repository, schemas


def wave_state(rollout: Rollout, index: int) -> str:
    """Return whether a wave is waiting, in progress, passed or stopped."""
    if index < rollout.current_wave or rollout.state == schemas.RolloutState.completed:
        return "passed"
    if rollout.state in (schemas.RolloutState.aborting, schemas.RolloutState.aborted):
        return "stopped" if index == rollout.current_wave else "waiting"
    if index == rollout.current_wave and rollout.wave_started_at is not None:
        return "in_progress"
    return "waiting"


def summary(rollout: Rollout) -> schemas.RolloutSummary:
    """Return a rollout as listed."""
    return schemas.RolloutSummary.model_validate(rollout, from_attributes=True)


async def rollout_view(session: AsyncSession, rollout: Rollout) -> schemas.Rollout:
    """Return a rollout with its waves and devices."""
    members: list[RolloutDevice] = await repository.devices_of(session, rollout.id)
    devices = await repository.devices_by_id(session, [m.device_id for m in members])
    deployments = await repository.deployments_by_id(
        session, [m.deployment_id for m in members if m.deployment_id is not None]
    )
    counts: dict[int, Counter[str]] = {i: Counter() for i in range(rollout.wave_count)}
    for member in members:
        counts.setdefault(member.wave, Counter())[member.state] += 1
    spec = rollout.spec
    return schemas.Rollout(
        # The full view is the listed one (but the wave count: its waves are there) and more.
        **summary(rollout).model_dump(exclude={"wave_count"}),
        soak_s=spec["soak_s"],
        offline_timeout_s=spec["offline_timeout_s"],
        abort=schemas.AbortRule.model_validate(spec["abort"]),
        waves=[
            schemas.WaveProgress(
                index=index,
                state=wave_state(rollout, index),
                size=sum(wave_counts.values()),
                counts=dict(wave_counts),
            )
            for index, wave_counts in sorted(counts.items())
        ],
        devices=[
            schemas.RolloutDevice(
                device_id=m.device_id,
                device_name=devices[m.device_id].name if m.device_id in devices else "",
                wave=m.wave,
                state=schemas.RolloutDeviceState(m.state),
                reason=m.reason,
                previous_version_id=m.previous_version_id,
                deployment_id=m.deployment_id,
                deployment_state=(
                    deployments[m.deployment_id].state
                    if m.deployment_id is not None and m.deployment_id in deployments
                    else None
                ),
                healthy_since=m.healthy_since,
            )
            for m in members
        ],
        etag=f'"{rollout.revision}"',
    )
