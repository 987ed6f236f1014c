"""API contract of devices."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from modelyard_common.schema_examples import examples_config

LABEL_KEY = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$"

Labels = Annotated[
    dict[str, Annotated[str, Field(max_length=200)]],
    Field(
        max_length=50,
        description="Free labels to select devices by, e.g. `site: plant-1`.",
        json_schema_extra={"propertyNames": {"pattern": LABEL_KEY}},
    ),
]


AdvertiseHost = Annotated[
    str | None,
    Field(
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}|[0-9a-fA-F:.]{0,252})$",
        description="The address other machines reach the device's ingress at (host or IP). "
        "Endpoint URLs are built from it; it is set at registration, changed afterwards by a "
        "workspace admin only, always within the deployer's ingress policy; a device's own "
        "messages (heartbeats, reports) never change it.",
    ),
]
IngressPort = Annotated[
    int | None, Field(ge=1, le=65535, description="The agent's ingress port (default 8004).")
]


def _check_label_keys(labels: dict[str, str] | None) -> dict[str, str] | None:
    for key in labels or {}:
        if not re.match(LABEL_KEY, key):
            raise ValueError(f"label key {key!r} must match {LABEL_KEY}")
    return labels


class DeviceStatus(StrEnum):
    online = "online"
    offline = "offline"
    revoked = "revoked"


class DeviceCreate(BaseModel):
    """Register a device that will run the agent."""

    model_config = examples_config(
        {"name": "press-line-3", "labels": {"site": "plant-1"}}, extra="forbid"
    )

    name: Annotated[str, Field(min_length=1, max_length=200)]
    labels: Labels = Field(default_factory=dict)
    advertise_host: AdvertiseHost = None
    ingress_port: IngressPort = None

    _keys = field_validator("labels")(_check_label_keys)


class DeviceUpdate(BaseModel):
    """Rename a device or replace its labels; a workspace admin may also move it."""

    model_config = examples_config({"labels": {}}, extra="forbid")

    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    labels: Labels | None = None
    advertise_host: AdvertiseHost = None
    ingress_port: IngressPort = None

    _keys = field_validator("labels")(_check_label_keys)


class Device(BaseModel):
    """A device as the API shows it (never its token)."""

    model_config = examples_config(
        {
            "id": "7d444840-9dc0-11d1-b245-5ffdce74fad2",
            "name": "press-line-3",
            "labels": {"site": "plant-1"},
            "status": "online",
            "agent_version": "0.1.0",
            "capabilities": {"arch": "arm64", "docker_version": "27.1", "ram_mb": 8192},
            "advertise_host": "10.0.4.17",
            "last_seen_at": "2026-11-22T08:00:30Z",
            "heartbeat_interval_s": 30.0,
            "created_at": "2026-11-20T10:00:00Z",
            "updated_at": "2026-11-22T08:00:30Z",
            "etag": '"3"',
        }
    )

    id: uuid.UUID
    name: str
    labels: dict[str, str]
    status: DeviceStatus = Field(
        description="`offline` once silent for two of its heartbeat intervals plus the "
        "deployer's grace (or the deployer's fixed silence, when one is configured)."
    )
    agent_version: str | None
    capabilities: dict[str, Any] = Field(description="arch, docker_version, ram_mb, disk_free_mb…")
    advertise_host: str | None
    ingress_port: int | None
    last_seen_at: datetime | None
    heartbeat_interval_s: float | None = Field(
        default=None,
        description="Seconds between its heartbeats, as the device declares them (bounded by "
        "the deployer); null until a heartbeat says it: the deployer's default applies.",
    )
    created_at: datetime
    updated_at: datetime
    etag: str


class DeviceWithToken(Device):
    """A device with its token: shown once, at registration or rotation."""

    token: str = Field(description="The device token; store it now, it is never shown again.")
    broker_url: str | None = Field(
        default=None,
        description="The broker address devices use (no login: the agent logs in as itself).",
    )
