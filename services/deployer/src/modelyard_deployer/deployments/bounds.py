"""Bounds on what a device sends over the broker, checked before anything of it is stored.

A device is trusted only as itself, and what it says is stored and shown (its capabilities in
every device list, its reports in history), so each message is held to a schema first: known
fields typed and sized, a few unknown capability keys of scalar values, a total size cap. A
message outside these bounds is dropped whole (counted and logged without its payload).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

INT32_MAX = 2**31 - 1
INT63_MAX = 2**63 - 1
# What one heartbeat may list (the agent lists the deployments it holds).
MAX_HEARTBEAT_DEPLOYMENTS = 10_000
# Capability keys beyond the known ones: a few, short, each with a short scalar value.
MAX_EXTRA_CAPABILITIES = 16
EXTRA_CAPABILITY_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
MAX_CAPABILITY_TEXT = 200
# A device's own times in its health may run ahead of ours by this much (edge clocks drift).
HEALTH_CLOCK_AHEAD = timedelta(days=1)
EARLIEST_HEALTH_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_PROBE_ERROR = 200
# Memory in MB (1 PiB) and CPU in percent of one core (10,000 cores): beyond, a device lies.
MAX_HEALTH_MB = 2.0**30
MAX_CPU_PERCENT = 1_000_000.0
# Each log line a report carries is cut to this (a history entry keeps the last 200 lines).
MAX_LOG_LINE = 2_000

Epoch = Annotated[str | None, Field(max_length=64)]


class DeviceCapabilities(BaseModel):
    """What a device may say about itself: the known facts, and a few scalar extras."""

    model_config = ConfigDict(extra="allow", strict=True)

    docker_version: Annotated[str | None, Field(max_length=100)] = None
    arch: Annotated[str | None, Field(max_length=50)] = None
    ram_mb: Annotated[int | None, Field(ge=0, le=INT63_MAX)] = None
    disk_free_mb: Annotated[int | None, Field(ge=0, le=INT63_MAX)] = None
    cpus: Annotated[int | None, Field(ge=0, le=1_000_000)] = None

    @model_validator(mode="after")
    def _bounded_extras(self) -> DeviceCapabilities:
        extras = self.model_extra or {}
        if len(extras) > MAX_EXTRA_CAPABILITIES:
            raise ValueError(f"at most {MAX_EXTRA_CAPABILITIES} capabilities beyond the known")
        for key, value in extras.items():
            if not EXTRA_CAPABILITY_KEY.match(key):
                raise ValueError("a capability key is not a short name")
            if isinstance(value, str):
                if len(value) > MAX_CAPABILITY_TEXT:
                    raise ValueError(f"capability {key} is longer than {MAX_CAPABILITY_TEXT}")
            elif isinstance(value, float):
                if not math.isfinite(value):
                    raise ValueError(f"capability {key} is not a finite number")
            elif isinstance(value, bool | int):
                if isinstance(value, int) and abs(value) > INT63_MAX:
                    raise ValueError(f"capability {key} is out of range")
            elif value is not None:
                raise ValueError(f"capability {key} is not a scalar")
        return self


class HeartbeatBounds(BaseModel):
    """The sizes a heartbeat must keep (its meaning is `DeviceHeartbeat`'s)."""

    model_config = ConfigDict(extra="ignore")

    agent_version: Annotated[str, Field(max_length=100)]
    agent_epoch: Epoch = None
    deployments: Annotated[list[Any], Field(max_length=MAX_HEARTBEAT_DEPLOYMENTS)] = Field(
        default_factory=list
    )
    # A number of seconds (not a string, nor NaN); above the deployer's bound it counts as that.
    interval_s: Annotated[float | None, Field(gt=0, strict=True, allow_inf_nan=False)] = None


class ReportBounds(BaseModel):
    """The ranges a report must keep to be stored (its meaning is `DeploymentReport`'s)."""

    model_config = ConfigDict(extra="ignore")

    generation: Annotated[int, Field(ge=0, le=INT32_MAX)]
    sequence: Annotated[int, Field(ge=0, le=2**62)]
    host_port: Annotated[int | None, Field(ge=1, le=65535)] = None
    agent_epoch: Epoch = None


Megabytes = Annotated[float | None, Field(ge=0, le=MAX_HEALTH_MB, allow_inf_nan=False)]


class HealthBounds(BaseModel):
    """One deployment's health as a heartbeat may carry it (its meaning: `DeploymentHealth`).

    Typed strictly (a string is no number, nor a number a flag), ranged (no negative restarts,
    no NaN memory), sized (a probe error as long as the agent cuts it), and its times aware and
    plausible: anything else drops this deployment's health from the heartbeat, not the rest.
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    probe_ok: bool | None = None
    probe_status: Annotated[int | None, Field(ge=100, le=599)] = None
    probe_error: Annotated[str | None, Field(max_length=MAX_PROBE_ERROR)] = None
    probed_at: Annotated[AwareDatetime | None, Field(strict=False)] = None
    restarts: Annotated[int | None, Field(ge=0, le=INT32_MAX)] = None
    memory_mb: Megabytes = None
    memory_limit_mb: Megabytes = None
    cpu_percent: Annotated[float | None, Field(ge=0, le=MAX_CPU_PERCENT, allow_inf_nan=False)] = (
        None
    )
    sampled_at: Annotated[AwareDatetime | None, Field(strict=False)] = None

    @field_validator("probed_at", "sampled_at")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        if value is not None and not (
            EARLIEST_HEALTH_TIME <= value <= datetime.now(UTC) + HEALTH_CLOCK_AHEAD
        ):
            raise ValueError("not a plausible time")
        return value


def bounded_health(entries: list[Any]) -> dict[uuid.UUID, HealthBounds]:
    """Return the health a heartbeat lists, by deployment id; unfit entries are left out.

    An entry without a readable deployment id or health, or whose health falls outside
    `HealthBounds`, says nothing; of one deployment listed twice the last entry counts.
    """
    found: dict[uuid.UUID, HealthBounds] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("health"), dict):
            continue
        try:
            deployment_id = uuid.UUID(str(entry.get("deployment_id")))
            found[deployment_id] = HealthBounds.model_validate(entry["health"])
        except (ValueError, ValidationError):
            continue
    return found


def bounded_capabilities(raw: object, *, max_bytes: int) -> dict[str, Any]:
    """Return a heartbeat's capabilities as they are stored; ValueError (no payload) if unfit."""
    if not isinstance(raw, dict):
        raise ValueError("capabilities is not an object")
    if len(raw) > MAX_EXTRA_CAPABILITIES + len(DeviceCapabilities.model_fields):
        raise ValueError("too many capabilities")
    if any(isinstance(v, dict | list) for v in raw.values()):
        raise ValueError("a capability is not a scalar")
    size = len(json.dumps(raw, ensure_ascii=False).encode())
    if size > max_bytes:
        raise ValueError(f"capabilities of {size} bytes exceed the {max_bytes} allowed")
    try:
        capabilities = DeviceCapabilities.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"capabilities out of bounds ({problems[:300]})") from None
    return capabilities.model_dump(mode="json", exclude_none=True)


def check_bounds(model: type[BaseModel], data: object) -> str | None:
    """Return why a device message falls outside `model`'s bounds (None: it fits)."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors())[:300]
    return None


def log_lines(lines: list[str]) -> list[str]:
    """Return the last 200 lines of a report's log tail, each cut to a bounded length."""
    return [line[:MAX_LOG_LINE] for line in lines[-200:]]
