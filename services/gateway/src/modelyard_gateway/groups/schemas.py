"""The API contract of model groups."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StrictBool

from modelyard_common.governance import ApprovalState, Gate
from modelyard_common.schema_examples import examples_config
from modelyard_gateway.fields import Name


def _unique(ids: list[uuid.UUID]) -> list[uuid.UUID]:
    if len(set(ids)) != len(ids):
        raise ValueError("an instance can appear only once in a group")
    return ids


InstanceIds = Annotated[
    list[uuid.UUID],
    Field(max_length=100, description="Instances in failover order: the first is tried first."),
    AfterValidator(_unique),
]


class EndpointPriority(BaseModel):
    """Failover order of a bound group's deployments, by one device label."""

    model_config = examples_config({"label": "site", "values": ["berlin", "paris"]}, extra="forbid")

    label: str = Field(min_length=1, max_length=100)
    values: list[Annotated[str, Field(max_length=200)]] = Field(max_length=100)


class GroupCreate(BaseModel):
    """A new model group."""

    model_config = examples_config(
        {
            "name": "chat",
            "description": "General chat: local Llama first, cloud as fallback.",
            "instance_ids": [
                "0f8fad5b-d9cb-469f-a165-70867728950e",
                "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            ],
        },
        extra="forbid",
    )

    name: Name = Field(description="What clients send as `model`.")
    description: str = Field(default="", max_length=10_000)
    instance_ids: InstanceIds = Field(default_factory=list)
    enabled: StrictBool = True
    registry_model_id: uuid.UUID | None = Field(
        default=None,
        description="Follow this registry model: every running deployment of it joins the group "
        "(after the hand-made instances).",
    )
    endpoint_priority: EndpointPriority | None = Field(
        default=None,
        description="Order of those deployments by a device label; otherwise by device id.",
    )
    log_bodies: StrictBool = Field(
        default=False,
        description="Keep prompts and answers in the request log (each capped at 64 KiB); "
        "otherwise the log keeps only what happened, never what was said.",
    )


class GroupUpdate(BaseModel):
    """Fields to change; absent ones stay. `instance_ids` replaces the whole order."""

    model_config = examples_config({"enabled": False}, extra="forbid")

    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    instance_ids: InstanceIds | None = None
    enabled: StrictBool | None = None
    registry_model_id: uuid.UUID | None = None
    endpoint_priority: EndpointPriority | None = None
    log_bodies: StrictBool | None = None


class GroupPolicy(BaseModel):
    """How the workspace's policy gate judges the registry model a group follows."""

    model_config = examples_config(
        {
            "gate": "enforce",
            "approval": "blocked",
            "serving": False,
            "reason": "Model sentiment is blocked (by carol: bias found); it may not be served.",
        }
    )

    gate: Gate
    approval: ApprovalState | None = Field(
        description="The model's approval as the gateway knows it (null: never heard of it)."
    )
    serving: bool = Field(description="False while the gate refuses clients (403 policy error).")
    reason: str | None = Field(
        description="Why the approval does not allow serving; under `warn` it is the warning."
    )


class GroupRead(BaseModel):
    """A model group as the API shows it."""

    id: uuid.UUID
    name: str
    description: str
    instance_ids: list[uuid.UUID]
    enabled: bool
    registry_model_id: uuid.UUID | None
    endpoint_priority: EndpointPriority | None
    log_bodies: bool = Field(description="Whether the request log keeps prompts and answers.")
    policy: GroupPolicy | None = Field(
        default=None, description="The policy gate on the followed model (null when none)."
    )
    created_at: datetime
    updated_at: datetime
    etag: str
