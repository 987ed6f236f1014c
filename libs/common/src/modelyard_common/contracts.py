"""Message contracts that cross service boundaries (the `data` of CloudEvents).

Exchanges and routing keys:

* ``aimodels.devices`` (topic), routing key ``device.<device_id>``: ``DeviceCommand``
  (event type ``deployer.device.command``), consumed by one agent from its quorum queue
  ``device.<device_id>``.
* ``aimodels.events`` (topic), routing key = event type:
  ``agent.deployment.reported`` (``DeploymentReport``), ``agent.device.heartbeat``
  (``DeviceHeartbeat``), ``deployer.deployment.state_changed``,
  ``deployer.deployment.endpoint_ready`` / ``deployer.deployment.endpoint_gone``
  (``EndpointAnnouncement``), ``gateway.usage.recorded`` (``UsageRecorded``),
  ``registry.model.*`` and friends.
* ``aimodels.replies`` (topic), routing key ``logs.<device_id>.<request_id>``: ``LogsChunk``
  (event type ``agent.deployment.logs``), the answer to a ``LogsRequest`` (event type
  ``deployer.deployment.logs_requested``, sent like a command on ``aimodels.devices`` to
  ``device.<device_id>``, transient, expiring). The asker binds a queue of its own (exclusive,
  auto-delete) to the key; a device's login may publish there only with its own id in the key.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from modelyard_common.manifest import Manifest

EVENTS_EXCHANGE = "aimodels.events"
DEVICES_EXCHANGE = "aimodels.devices"
DEAD_LETTER_EXCHANGE = "aimodels.dlx"
REPLIES_EXCHANGE = "aimodels.replies"

DEVICE_COMMAND = "deployer.device.command"
DEPLOYMENT_REPORTED = "agent.deployment.reported"
DEVICE_HEARTBEAT = "agent.device.heartbeat"
DEPLOYMENT_STATE_CHANGED = "deployer.deployment.state_changed"
ENDPOINT_READY = "deployer.deployment.endpoint_ready"
ENDPOINT_GONE = "deployer.deployment.endpoint_gone"
GATEWAY_USAGE_RECORDED = "gateway.usage.recorded"
DEPLOYMENT_LOGS_REQUESTED = "deployer.deployment.logs_requested"
DEPLOYMENT_LOGS = "agent.deployment.logs"
LOGS_REPLY_PREFIX = "logs"


def device_routing_key(device_id: UUID | str) -> str:
    """Return the routing key (and queue name) of one device's commands."""
    return f"device.{device_id}"


def logs_reply_key(device_id: UUID | str, request_id: UUID | str) -> str:
    """Return the routing key of a device's answers to one logs request (on `aimodels.replies`)."""
    return f"{LOGS_REPLY_PREFIX}.{device_id}.{request_id}"


class DesiredState(StrEnum):
    running = "running"
    stopped = "stopped"
    removed = "removed"


class DeploymentState(StrEnum):
    pending = "pending"
    downloading = "downloading"
    verifying = "verifying"
    building = "building"
    starting = "starting"
    running = "running"
    stopped = "stopped"
    removing = "removing"
    removed = "removed"
    failed = "failed"
    rolled_back = "rolled_back"
    cancelled = "cancelled"


IN_PROGRESS_STATES = frozenset(
    {
        DeploymentState.pending,
        DeploymentState.downloading,
        DeploymentState.verifying,
        DeploymentState.building,
        DeploymentState.starting,
        DeploymentState.removing,
    }
)


class CommandAction(StrEnum):
    deploy = "deploy"
    start = "start"
    stop = "stop"
    restart = "restart"
    remove = "remove"
    cancel = "cancel"
    rollback = "rollback"


class VersionSpec(BaseModel):
    """What an agent needs to fetch and run one model version."""

    model_config = ConfigDict(extra="ignore")

    id: UUID
    model_id: UUID
    model_name: str
    number: int
    sha256: str
    size_bytes: int
    artifact_url: str
    manifest: Manifest


class DeviceCommand(BaseModel):
    """The whole desired state of one deployment on one device.

    Commands are declarative: each carries the full desired state, and `generation` grows with
    every command for the deployment, so an agent applies a command only when its generation is
    higher than the one it holds (a stale or replayed command changes nothing).
    """

    model_config = ConfigDict(extra="ignore")

    deployment_id: UUID
    device_id: UUID
    generation: int = Field(ge=1)
    action: CommandAction
    desired_state: DesiredState
    version: VersionSpec
    previous_version: VersionSpec | None = None


class DeploymentReport(BaseModel):
    """A state change of one deployment, as seen by the agent.

    `sequence` grows with every report the agent makes for the deployment; the deployer ignores a
    report whose sequence is not higher than the last it applied (late or duplicate reports).
    """

    model_config = ConfigDict(extra="ignore")

    deployment_id: UUID
    device_id: UUID
    generation: int
    sequence: int
    state: DeploymentState
    version_id: UUID | None = None
    message: str = ""
    log_tail: list[str] = Field(default_factory=list)
    host_port: int | None = None
    # Ignored by the deployer: an endpoint's URL is built from the device record, never taken
    # from what a device says about itself.
    base_url: str | None = None
    reported_at: datetime
    # Changes when the agent's data dir is new: its sequences restart, the deployer resyncs.
    agent_epoch: str | None = None


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="allow")

    docker_version: str | None = None
    arch: str | None = None
    ram_mb: int | None = None
    disk_free_mb: int | None = None
    cpus: int | None = None


class DeploymentHealth(BaseModel):
    """How one deployment's container fares, as its device saw it for a heartbeat.

    Each entry of `DeviceHeartbeat.deployments` carries one under `health`; a field is None
    when the agent could not tell (not running, not probed yet, Docker too slow to answer).
    """

    model_config = ConfigDict(extra="ignore")

    # The last call to the manifest's health path: answered below 400, the status, or why not.
    probe_ok: bool | None = None
    probe_status: int | None = None
    probe_error: str | None = None
    probed_at: datetime | None = None
    # Times Docker restarted the serving container (its restart policy), since it was made.
    restarts: int | None = None
    memory_mb: float | None = None
    memory_limit_mb: float | None = None
    # Share of one core since the previous heartbeat (200 = two cores busy).
    cpu_percent: float | None = None
    sampled_at: datetime | None = None


class DeviceHeartbeat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    device_id: UUID
    agent_version: str
    capabilities: Capabilities
    advertise_host: str = "127.0.0.1"
    sent_at: datetime
    deployments: list[dict[str, Any]] = Field(default_factory=list)
    agent_epoch: str | None = None
    # Seconds until the next heartbeat (the agent's setting): the deployer reads the device
    # offline after two of them plus its grace. None: an older agent (the deployer's default).
    interval_s: float | None = None


class EndpointAnnouncement(BaseModel):
    model_config = ConfigDict(extra="ignore")

    deployment_id: UUID
    model_id: UUID
    version_id: UUID
    device_id: UUID
    base_url: str
    device_labels: dict[str, str] = Field(default_factory=dict)
    workspace: str | None = None
    # Grows with every endpoint event of the deployment: a consumer applies only newer ones.
    sequence: int = 0
    # The device ingress credential, sealed (Fernet) with the key the deployer and the gateway
    # share (`MODELYARD_INGRESS_SEAL_KEY`): never in clear on the bus.
    ingress_token_sealed: str | None = None


class UsageCounts(BaseModel):
    """Counts of gateway traffic: requests, the errors among them, tokens the backends reported."""

    model_config = ConfigDict(extra="ignore")

    requests: int = Field(default=0, ge=0)
    errors: int = Field(default=0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)


class UsageRecorded(BaseModel):
    """What one gateway replica counted for one registry model on one UTC day in one interval.

    The counts are deltas (add them up); the event id makes each delta count once.
    """

    model_config = ConfigDict(extra="ignore")

    workspace: str
    model_id: UUID
    day: date
    deltas: UsageCounts
    gateway_replica: str
    interval_start: datetime
    interval_end: datetime


MAX_LOG_TAIL = 10_000


class LogsRequest(BaseModel):
    """A request for one deployment's container logs, sent to its device.

    The device answers with `LogsChunk`s on `aimodels.replies` under
    `logs_reply_key(device_id, request_id)`, published as mandatory: once the asker's queue is
    gone (it stopped listening, or its connection dropped) a chunk comes back unroutable and the
    device stops. A request past `expires_at` is not answered (the asker gave up).
    """

    model_config = ConfigDict(extra="ignore")

    request_id: UUID
    deployment_id: UUID
    device_id: UUID
    tail: int = Field(ge=0, le=MAX_LOG_TAIL)
    follow: bool = False
    since: datetime | None = None
    # Bounds of the whole answer, which the device may lower further (never raise).
    max_bytes: int = Field(ge=1)
    max_duration_s: float = Field(gt=0)
    # A quiet follow stream sends an empty chunk this often, so each end sees the other is there.
    keepalive_s: float = Field(default=5.0, gt=0)
    expires_at: datetime


class LogsEnd(StrEnum):
    """Why a device ended its answer to a logs request."""

    complete = "complete"  # a tail: every line asked for was sent
    max_bytes = "max_bytes"
    max_duration = "max_duration"
    container_gone = "container_gone"
    no_container = "no_container"  # the deployment has no container on the device
    unknown_deployment = "unknown_deployment"
    busy = "busy"  # the device answers too many logs requests already
    failed = "failed"  # Docker could not be read


class LogsChunk(BaseModel):
    """Some lines of a logs answer; `seq` counts from 0; the last chunk carries `end`.

    A chunk without lines and without `end` is a keepalive of a quiet follow stream.
    """

    model_config = ConfigDict(extra="ignore")

    request_id: UUID
    deployment_id: UUID
    seq: int = Field(ge=0)
    lines: list[str] = Field(default_factory=list)
    # Lines were dropped (the byte bound) or cut (the line-length bound).
    truncated: bool = False
    end: LogsEnd | None = None
    detail: str = ""
