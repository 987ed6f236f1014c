"""API contract of provisioning tokens and device self-registration."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from modelyard_common.schema_examples import examples_config
from modelyard_deployer.devices.schemas import (
    AdvertiseHost,
    IngressPort,
    Labels,
    _check_label_keys,
)

MAX_PROVISIONING_TTL_S = 30 * 24 * 3600  # the longest a provisioning token may live


class ProvisioningTokenCreate(BaseModel):
    """Issue a token that registers up to `max_uses` devices until it expires."""

    model_config = examples_config(
        {
            "name": "plant-1 rollout",
            "expires_in_s": 86400,
            "max_uses": 20,
            "labels": {"site": "plant-1"},
        },
        extra="forbid",
    )

    name: Annotated[str, Field(min_length=1, max_length=200)]
    expires_in_s: Annotated[
        int,
        Field(
            ge=60,
            le=MAX_PROVISIONING_TTL_S,
            description="Lifetime in seconds: at most 30 days, or less where the deployer's "
            "`MODELYARD_DEPLOYER_PROVISIONING_MAX_TTL_H` says so (422 above it).",
        ),
    ] = 86400
    max_uses: Annotated[int, Field(ge=1, le=100_000)] = 1
    labels: Labels = Field(
        default_factory=dict,
        description="The labels every device registered with it gets (a device may not add or "
        "change any).",
    )

    _keys = field_validator("labels")(_check_label_keys)


class ProvisioningToken(BaseModel):
    """A provisioning token as the API shows it (never the token itself)."""

    id: uuid.UUID
    name: str
    labels: dict[str, str]
    expires_at: datetime
    max_uses: int
    uses: int
    revoked: bool
    created_by: str
    created_at: datetime


class ProvisioningTokenWithSecret(ProvisioningToken):
    """A new provisioning token: the secret is shown only here."""

    token: str = Field(description="Hand it to the device's installer; it is never shown again.")


class DeviceRegistration(BaseModel):
    """What a device sends to register itself with a provisioning token."""

    model_config = examples_config(
        {
            "name": "press-line-3",
            "advertise_host": "10.0.4.17",
            "ingress_port": 8004,
        },
        extra="forbid",
    )

    name: Annotated[str, Field(min_length=1, max_length=200)]
    labels: Labels = Field(
        default_factory=dict,
        description="The device gets exactly its provisioning token's labels: these may only "
        "repeat them (422 naming any label the token does not give).",
    )
    advertise_host: AdvertiseHost = None
    ingress_port: IngressPort = None

    _keys = field_validator("labels")(_check_label_keys)
