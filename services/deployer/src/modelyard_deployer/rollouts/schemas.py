"""API contract of rollouts: a version to many devices in waves, and their progress."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard_common.schema_examples import examples_config
from modelyard_deployer.deployments.schemas import ONE_TARGET, DeviceTargets


class RolloutState(enum.StrEnum):
    """Where a rollout is: moving waves, held, returning devices, or done."""

    running = "running"
    paused = "paused"
    aborting = "aborting"
    completed = "completed"
    aborted = "aborted"


FINISHED = frozenset({RolloutState.completed, RolloutState.aborted})


class RolloutDeviceState(enum.StrEnum):
    """How one device of a rollout fares."""

    waiting = "waiting"  # its wave has not started
    updating = "updating"  # deployment sent, not yet running the version
    healthy = "healthy"  # runs the version (soaking until its wave passes)
    failed = "failed"
    skipped = "skipped"  # offline too long, or not updated when the rollout ended
    rolled_back = "rolled_back"  # back on the version it ran before
    removed = "removed"  # the model was not on it before: its deployment is removed


def _exactly_one_size(schema: dict[str, Any]) -> None:
    """Say in the schema what the validator checks: one of the three, and not null."""
    schema["minProperties"] = 1
    schema["maxProperties"] = 1
    for prop in schema.get("properties", {}).values():
        choices = prop.pop("anyOf", None)
        if choices:
            prop.update(next(c for c in choices if c.get("type") != "null"))
        prop.pop("default", None)


class Wave(BaseModel):
    """One wave: a count of devices, a percentage of the targets, or (canary) a label selector."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_size)

    count: Annotated[int | None, Field(ge=1, le=100_000)] = None
    percent: Annotated[float | None, Field(gt=0, le=100)] = None
    selector: Annotated[dict[str, str] | None, Field(min_length=1, max_length=50)] = None

    @model_validator(mode="after")
    def _one_size(self) -> Self:
        given = [v for v in (self.count, self.percent, self.selector) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `count`, `percent` or `selector`")
        return self


class AbortRule(BaseModel):
    """When the rollout stops and returns updated devices to their previous version."""

    model_config = ConfigDict(extra="forbid")

    failure_percent: Annotated[float, Field(ge=0, le=100)] = Field(
        default=0, description="Abort once failed devices exceed this share of those judged."
    )
    min_devices: Annotated[int, Field(ge=1)] = Field(
        default=1, description="Judged devices needed before the failure share counts."
    )
    wave_timeout_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=900, description="Abort when a wave has not passed after this long."
    )


class RolloutCreate(DeviceTargets):
    """Send a version to listed devices or a selector's devices, wave by wave."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version_id": "5b0c1f4e-8a51-4a53-9a1e-9fb8b8a3d0aa",
                    "selector": {"site": "plant-1"},
                    "waves": [{"selector": {"ring": "canary"}}, {"percent": 50}, {"percent": 50}],
                    "soak_s": 120,
                    "abort": {"failure_percent": 10, "min_devices": 2, "wave_timeout_s": 900},
                    "offline_timeout_s": 300,
                }
            ],
            "oneOf": ONE_TARGET,
        },
    )

    # A rollout may name more devices than a deployment (it sends them wave by wave).
    device_ids: Annotated[list[uuid.UUID] | None, Field(min_length=1, max_length=10_000)] = None
    waves: Annotated[list[Wave], Field(min_length=1, max_length=50)] = Field(
        description="The first is the canary; each wave is a count, a percentage of the targets "
        "or a label selector (the targets left that match it); the devices left after the last "
        "wave join the last wave."
    )
    soak_s: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=60, description="How long a wave's devices must run healthy before it passes."
    )
    abort: AbortRule = Field(default_factory=AbortRule)
    offline_timeout_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=300, description="A device silent this long is skipped (it never holds a wave)."
    )


class RolloutDevice(BaseModel):
    """One device of a rollout and how it fares."""

    device_id: uuid.UUID
    device_name: str
    wave: int
    state: RolloutDeviceState
    reason: str
    previous_version_id: uuid.UUID | None = Field(description="What it ran before its wave.")
    deployment_id: uuid.UUID | None
    deployment_state: str | None = Field(description="The deployment's last reported state.")
    healthy_since: datetime | None


class WaveProgress(BaseModel):
    """One wave and the count of its devices in each state."""

    index: int
    state: str = Field(description="`waiting`, `in_progress`, `passed` or `stopped`.")
    size: int
    counts: dict[str, int]


class Rollout(BaseModel):
    """A rollout, its waves and its devices."""

    model_config = examples_config(
        {
            "id": "0b8a3e0e-8c2d-4bb0-9d7b-0e3e0fd7d9a1",
            "model_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "version_id": "5b0c1f4e-8a51-4a53-9a1e-9fb8b8a3d0aa",
            "state": "running",
            "reason": "",
            "current_wave": 1,
            "soak_s": 120,
            "offline_timeout_s": 300,
            "abort": {"failure_percent": 10, "min_devices": 2, "wave_timeout_s": 900},
            "waves": [
                {"index": 0, "state": "passed", "size": 1, "counts": {"healthy": 1}},
                {"index": 1, "state": "in_progress", "size": 2, "counts": {"updating": 2}},
            ],
            "devices": [],
            "created_by": "alice",
            "created_at": "2026-11-22T08:00:00Z",
            "updated_at": "2026-11-22T08:03:00Z",
            "finished_at": None,
            "etag": '"3"',
        }
    )

    id: uuid.UUID
    model_id: uuid.UUID
    version_id: uuid.UUID
    state: RolloutState
    reason: str = Field(description="Why it paused or aborted.")
    current_wave: int
    soak_s: float
    offline_timeout_s: float
    abort: AbortRule
    waves: list[WaveProgress]
    devices: list[RolloutDevice]
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    etag: str


class RolloutSummary(BaseModel):
    """A rollout in a list (without its devices)."""

    id: uuid.UUID
    model_id: uuid.UUID
    version_id: uuid.UUID
    state: RolloutState
    reason: str
    current_wave: int
    wave_count: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class RolloutEvent(BaseModel):
    """One entry of a rollout's history."""

    model_config = examples_config(
        {
            "id": 41,
            "kind": "device_skipped",
            "wave": 1,
            "device_id": "7d444840-9dc0-11d1-b245-5ffdce74fad2",
            "message": "offline for more than 300s",
            "actor": None,
            "recorded_at": "2026-11-22T08:03:00Z",
        }
    )

    id: int
    kind: str
    wave: int | None
    device_id: uuid.UUID | None
    message: str
    actor: str | None
    recorded_at: datetime
