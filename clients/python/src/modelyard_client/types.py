"""The shapes the services answer with (the fields the SDK and the CLI rely on).

TypedDicts cost nothing at run time and keep mypy honest; a response carries every field of the
service's OpenAPI schema, these name the ones clients use.
"""

from __future__ import annotations

from typing import Any, Generic, TypedDict, TypeVar

T = TypeVar("T")


class Page(TypedDict, Generic[T]):
    """One page of a list: `next_cursor` is None on the last page."""

    items: list[T]
    next_cursor: str | None


class AIModel(TypedDict, total=False):
    """A registry AI model."""

    id: str
    name: str
    description: str
    learning_type: str
    functionality: str | None
    foundations: str | None
    provider: str | None
    tags: list[str]
    properties: dict[str, Any]
    archived: bool
    approval: str
    approval_conditions: dict[str, Any] | None
    approval_comment: str | None
    created_at: str
    updated_at: str
    etag: str


class Approval(TypedDict, total=False):
    """A model's approval: state, conditions, who asked and who decided."""

    state: str
    conditions: dict[str, Any] | None
    requested_by: str | None
    requested_at: str | None
    request_comment: str | None
    decided_by: str | None
    decided_at: str | None
    decision_comment: str | None


class Policy(TypedDict, total=False):
    """A workspace's policy gate."""

    workspace: str
    gate: str
    is_default: bool
    comment: str
    updated_by: str | None
    updated_at: str | None


class AISystem(TypedDict, total=False):
    """A registry AI system."""

    id: str
    name: str
    description: str
    purpose: str | None
    owner: str | None
    status: str
    risk_level: str
    tags: list[str]
    archived: bool
    created_at: str
    updated_at: str
    etag: str


class Link(TypedDict, total=False):
    """A system x model link with its description of use."""

    system_id: str
    system_name: str
    model_id: str
    model_name: str
    description_of_use: str


class HistoryEntry(TypedDict, total=False):
    """One change of a registry resource: who, when, old -> new."""

    id: str
    resource_type: str
    resource_id: str
    action: str
    actor: str
    at: str
    changes: dict[str, dict[str, Any]]


class ModelVersion(TypedDict, total=False):
    """An uploaded version of a model (zip + run manifest)."""

    id: str
    model_id: str
    number: int
    title: str
    comment: str
    manifest: dict[str, Any]
    sha256: str
    size_bytes: int
    file_count: int
    created_at: str


class Device(TypedDict, total=False):
    """A device that runs the agent."""

    id: str
    name: str
    labels: dict[str, str]
    status: str
    agent_version: str | None
    last_seen_at: str | None
    token: str


class Deployment(TypedDict, total=False):
    """One model version desired on one device, with its live state."""

    id: str
    model_id: str
    model_name: str | None
    version_id: str
    version_number: int
    running_version_id: str | None
    device_id: str
    device_name: str
    desired_state: str
    state: str
    state_message: str
    base_url: str | None
    updated_at: str
    etag: str


class DeploymentEvent(TypedDict, total=False):
    """One state change of a deployment (agent report or deployer action)."""

    id: int
    deployment_id: str
    source: str
    action: str | None
    state: str
    message: str
    log_tail: list[str]
    occurred_at: str


class RolloutSummary(TypedDict, total=False):
    """A rollout as listed."""

    id: str
    model_id: str
    version_id: str
    state: str
    reason: str
    current_wave: int
    wave_count: int
    created_by: str
    created_at: str
    finished_at: str | None


class RolloutWave(TypedDict, total=False):
    """One wave of a rollout and the count of its devices per state."""

    index: int
    state: str
    size: int
    counts: dict[str, int]


class RolloutDevice(TypedDict, total=False):
    """One device of a rollout and how it fares."""

    device_id: str
    device_name: str
    wave: int
    state: str
    reason: str
    previous_version_id: str | None
    deployment_id: str | None
    deployment_state: str | None


class Rollout(RolloutSummary, total=False):
    """A rollout with its waves and devices."""

    soak_s: float
    offline_timeout_s: float
    abort: dict[str, Any]
    waves: list[RolloutWave]
    devices: list[RolloutDevice]
    etag: str


class RolloutEvent(TypedDict, total=False):
    """One step of a rollout (wave started or passed, device skipped or failed, abort)."""

    id: int
    kind: str
    wave: int | None
    device_id: str | None
    message: str
    actor: str | None
    recorded_at: str


class Group(TypedDict, total=False):
    """A gateway model group."""

    id: str
    name: str
    description: str
    instance_ids: list[str]
    enabled: bool
    registry_model_id: str | None
    log_bodies: bool
    etag: str


class LoggedRequest(TypedDict, total=False):
    """One client request in the gateway's request log."""

    id: str
    at: str
    key_id: str
    endpoint: str
    group: str | None
    registry_model_id: str | None
    instances: list[str]
    attempts: int
    status: int
    error_cause: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    ttfb_ms: int | None
    duration_ms: int
    stream: bool
    replica: str
    request_body: str | None
    response_body: str | None


class Instance(TypedDict, total=False):
    """A gateway backend."""

    id: str
    name: str
    kind: str
    host: str | None
    port: int | None
    base_url: str | None
    upstream_model: str
    enabled: bool
    health: dict[str, Any]
    etag: str


class InstanceCheck(TypedDict, total=False):
    """The result of probing an instance."""

    ok: bool
    latency_ms: float | None
    status_code: int | None
    error: str | None
    url: str


class ApiKey(TypedDict, total=False):
    """A gateway client key; `key` is present only in the create answer."""

    id: str
    name: str
    groups: list[str]
    key_hint: str
    revoked_at: str | None
    key: str
