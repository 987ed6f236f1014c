"""API contract of deployments and their history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from modelyard_common.contracts import CommandAction, DeploymentState, DesiredState
from modelyard_common.schema_examples import examples_config

MAX_DEVICE_IDS = 1000  # devices named in one create (a selector reaches any number)


class DeviceTargets(BaseModel):
    """A version and the devices it goes to: listed, or every device whose labels match a
    selector (exactly one of the two; a create that targets devices says so in its schema
    with `ONE_TARGET`)."""

    model_config = ConfigDict(extra="forbid")

    version_id: uuid.UUID
    device_ids: Annotated[
        list[uuid.UUID] | None, Field(min_length=1, max_length=MAX_DEVICE_IDS)
    ] = None
    selector: Annotated[dict[str, str] | None, Field(min_length=1, max_length=50)] = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.device_ids is None) == (self.selector is None):
            raise ValueError("give exactly one of `device_ids` or `selector`")
        return self


# The validator's rule (exactly one of the targets, and not null), said in the schema for clients.
ONE_TARGET: list[JsonValue] = [
    {
        "required": ["device_ids"],
        "not": {"required": ["selector"]},
        "properties": {"device_ids": {"type": "array"}},
    },
    {
        "required": ["selector"],
        "not": {"required": ["device_ids"]},
        "properties": {"selector": {"type": "object"}},
    },
]


class DeploymentCreate(DeviceTargets):
    """Deploy a version to listed devices, or to every device whose labels match a selector."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version_id": "5b0c1f4e-8a51-4a53-9a1e-9fb8b8a3d0aa",
                    "device_ids": ["7d444840-9dc0-11d1-b245-5ffdce74fad2"],
                },
                {
                    "version_id": "5b0c1f4e-8a51-4a53-9a1e-9fb8b8a3d0aa",
                    "selector": {"site": "plant-1"},
                },
            ],
            "oneOf": ONE_TARGET,
        },
    )


class Redeploy(BaseModel):
    """Switch a deployment to another version of the same model."""

    model_config = ConfigDict(extra="forbid")

    version_id: uuid.UUID


HEALTH_EXAMPLE = {
    "probe_ok": True,
    "probe_status": 200,
    "probe_error": None,
    "probed_at": "2026-11-22T08:01:05Z",
    "restarts": 0,
    "memory_mb": 84.2,
    "memory_limit_mb": 512.0,
    "cpu_percent": 3.5,
    "sampled_at": "2026-11-22T08:01:05Z",
    "reported_at": "2026-11-22T08:01:06Z",
}


class DeploymentHealth(BaseModel):
    """How the deployment's container fared, as the device's latest heartbeat listing it said.

    A field is null when the device could not tell (not running, not probed yet, Docker too
    slow to answer). CPU use is a share of one core since the device's previous heartbeat.
    """

    model_config = examples_config(HEALTH_EXAMPLE)

    probe_ok: bool | None = Field(description="The health path answered below 400.")
    probe_status: int | None = Field(description="The health path's status code.")
    probe_error: str | None = Field(description="Why the health path did not answer.")
    probed_at: datetime | None = Field(description="When the device probed (its clock).")
    restarts: int | None = Field(description="Times Docker restarted the serving container.")
    memory_mb: float | None
    memory_limit_mb: float | None
    cpu_percent: float | None = Field(description="Share of one core (200 = two cores busy).")
    sampled_at: datetime | None = Field(description="When memory and CPU were read (its clock).")
    reported_at: datetime = Field(description="When the deployer received it.")


class Deployment(BaseModel):
    """One model version desired on one device, and what the device last reported."""

    model_config = examples_config(
        {
            "id": "c56a4180-65aa-42ec-a945-5fd21dec0538",
            "model_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "model_name": "fraud-detector",
            "version_id": "5b0c1f4e-8a51-4a53-9a1e-9fb8b8a3d0aa",
            "version_number": 3,
            "previous_version_id": None,
            "running_version_id": "5b0c1f4e-8a51-4a53-9a1e-9fb8b8a3d0aa",
            "device_id": "7d444840-9dc0-11d1-b245-5ffdce74fad2",
            "device_name": "press-line-3",
            "desired_state": "running",
            "state": "running",
            "state_message": "healthy on port 41234",
            "generation": 1,
            "base_url": None,
            "policy_warning": None,
            "health": HEALTH_EXAMPLE,
            "created_by": "alice",
            "created_at": "2026-11-22T08:00:00Z",
            "updated_at": "2026-11-22T08:01:10Z",
            "etag": '"2"',
        }
    )

    id: uuid.UUID
    model_id: uuid.UUID
    model_name: str | None
    version_id: uuid.UUID
    version_number: int
    previous_version_id: uuid.UUID | None = Field(description="What `rollback` goes back to.")
    running_version_id: uuid.UUID | None = Field(description="The version the device runs.")
    device_id: uuid.UUID
    device_name: str
    desired_state: DesiredState
    state: DeploymentState
    state_message: str
    generation: int = Field(description="Grows with every command sent to the device.")
    base_url: str | None = Field(description="OpenAI-compatible endpoint, while running.")
    policy_warning: str | None = Field(
        default=None,
        description="Why the policy gate would refuse this deployment; set while it runs only "
        "because the workspace's gate is `warn`.",
    )
    health: DeploymentHealth | None = Field(
        default=None,
        description="From the device's latest heartbeat that listed it; null until the first. "
        "Not part of the ETag: it changes with every heartbeat, not by anyone's edit.",
    )
    created_by: str
    created_at: datetime
    updated_at: datetime
    etag: str


class DeploymentBatch(BaseModel):
    """The deployments a create made or updated, one per device."""

    items: list[Deployment]


class HistoryEntry(BaseModel):
    """A reported state (source `agent`) or an action taken (source `deployer`)."""

    model_config = examples_config(
        {
            "id": 812,
            "deployment_id": "c56a4180-65aa-42ec-a945-5fd21dec0538",
            "model_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "device_id": "7d444840-9dc0-11d1-b245-5ffdce74fad2",
            "version_id": "5b0c1f4e-8a51-4a53-9a1e-9fb8b8a3d0aa",
            "source": "agent",
            "action": None,
            "state": "failed",
            "message": "health check /healthz never answered 200",
            "log_tail": ["Traceback (most recent call last):", "ImportError: numpy"],
            "generation": 2,
            "sequence": 7,
            "applied": True,
            "actor": None,
            "occurred_at": "2026-11-22T08:03:12Z",
            "recorded_at": "2026-11-22T08:03:12Z",
        }
    )

    id: int
    deployment_id: uuid.UUID
    model_id: uuid.UUID
    device_id: uuid.UUID
    version_id: uuid.UUID | None
    source: str = Field(description="`agent` for reports, `deployer` for actions.")
    action: CommandAction | None
    state: DeploymentState
    message: str
    log_tail: list[str]
    generation: int
    sequence: int | None
    applied: bool = Field(description="False for a late report that did not change the state.")
    actor: str | None
    occurred_at: datetime
    recorded_at: datetime


class EndpointsAnnounced(BaseModel):
    """How many running endpoints were announced again."""

    model_config = examples_config({"announced": 2})

    announced: int
