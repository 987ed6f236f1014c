"""The API contract of model groups."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
)

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


StrategyType = Literal["ordered", "weighted", "least_busy", "latency"]
Weight = Annotated[StrictInt, Field(ge=0, le=1_000_000)]


class Sticky(BaseModel):
    """Keep one client on one instance (while it is healthy) under the `weighted` strategy."""

    model_config = examples_config(
        {"by": "key"}, {"by": "header", "header": "x-session-id"}, extra="forbid"
    )

    by: Literal["key", "header"] = Field(
        description="`key`: the client's API key; `header`: the value of the request header "
        "`header` (a request without it is not sticky)."
    )
    header: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
        validate_default=True,
        description="The request header whose value names the client (with `by: header`).",
    )

    @field_validator("header")
    @classmethod
    def _header_with_by_header(cls, value: str | None, info: ValidationInfo) -> str | None:
        by = info.data.get("by")
        if by == "header" and not value:
            raise ValueError("a header name is required with `by: header`")
        if by == "key" and value is not None:
            raise ValueError("only with `by: header`")
        return value.lower() if value else None


class GroupStrategy(BaseModel):
    """How each request orders the group's instances; failover then walks that order.

    `ordered`: the group's order. `weighted`: each instance first for its share of the requests
    (`weights` by instance id; members without one get `default_weight`, e.g. the deployments
    joining a bound group; weight 0: only as a fallback), optionally `sticky`. `least_busy`:
    fewest requests in flight on this replica first. `latency`: lowest recent time to first byte
    first (instances without a measurement first, and now and then a random one).
    """

    model_config = examples_config(
        {
            "type": "weighted",
            "weights": {
                "0f8fad5b-d9cb-469f-a165-70867728950e": 90,
                "7c9e6679-7425-40de-944b-e07fc1f90ae7": 10,
            },
            "sticky": {"by": "header", "header": "x-session-id"},
        },
        {"type": "least_busy"},
        extra="forbid",
    )

    type: StrategyType = "ordered"
    default_weight: Weight = Field(
        default=0,
        description="`weighted`: the weight of members not in `weights` (0: only as a fallback).",
    )
    weights: dict[uuid.UUID, Weight] | None = Field(
        default=None,
        validate_default=True,
        description="`weighted`: relative shares by member instance id (e.g. percentages); "
        "they and `default_weight` must add up to more than 0.",
    )
    sticky: Sticky | None = Field(default=None, description="`weighted` only.")

    @field_validator("default_weight")
    @classmethod
    def _default_weight_if_weighted(cls, value: int, info: ValidationInfo) -> int:
        if value and info.data.get("type") != "weighted":
            raise ValueError("only with the `weighted` strategy")
        return value

    @field_validator("weights")
    @classmethod
    def _weights_if_weighted(
        cls, value: dict[uuid.UUID, int] | None, info: ValidationInfo
    ) -> dict[uuid.UUID, int] | None:
        kind = info.data.get("type")
        if kind != "weighted":
            if value is not None:
                raise ValueError("only with the `weighted` strategy")
            return value
        if sum((value or {}).values()) + info.data.get("default_weight", 0) <= 0:
            raise ValueError("the weights (and `default_weight`) must add up to more than 0")
        return value

    @field_validator("sticky")
    @classmethod
    def _sticky_if_weighted(cls, value: Sticky | None, info: ValidationInfo) -> Sticky | None:
        if value is not None and info.data.get("type") != "weighted":
            raise ValueError("only with the `weighted` strategy")
        return value

    def stored(self) -> dict[str, Any]:
        """Return the strategy as the group's row keeps it (JSON, defaults left out)."""
        return self.model_dump(mode="json", exclude_defaults=True) | {"type": self.type}


def strategy_of(stored: dict[str, Any] | None) -> GroupStrategy:
    """Return the strategy a group's row keeps (the default `ordered` when none)."""
    return GroupStrategy.model_validate(stored or {})


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
    strategy: GroupStrategy = Field(
        default_factory=GroupStrategy,
        description="How each request orders the instances before failover (`ordered`).",
    )
    log_bodies: StrictBool = Field(
        default=False,
        description="Keep prompts and answers in the request log (each capped at 64 KiB); "
        "otherwise the log keeps only what happened, never what was said.",
    )


class GroupUpdate(BaseModel):
    """Fields to change; absent ones stay. `instance_ids` replaces the whole order."""

    model_config = examples_config(
        {"enabled": False},
        {"strategy": {"type": "weighted", "default_weight": 1, "sticky": {"by": "key"}}},
        extra="forbid",
    )

    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    instance_ids: InstanceIds | None = None
    enabled: StrictBool | None = None
    registry_model_id: uuid.UUID | None = None
    endpoint_priority: EndpointPriority | None = None
    strategy: GroupStrategy | None = Field(
        default=None, description="Replaces the whole strategy (weights included)."
    )
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
    strategy: GroupStrategy
    log_bodies: bool = Field(description="Whether the request log keeps prompts and answers.")
    policy: GroupPolicy | None = Field(
        default=None, description="The policy gate on the followed model (null when none)."
    )
    created_at: datetime
    updated_at: datetime
    etag: str
