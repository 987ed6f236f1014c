"""The footprint API contract: where a model runs, where it ran when, and how much it served."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from modelyard_common.schema_examples import examples_config


class DeploymentPlace(BaseModel):
    """One deployment of the model: the device, the versions, the latest state."""

    deployment_id: uuid.UUID
    device_id: uuid.UUID
    version_id: uuid.UUID = Field(description="The version desired on the device.")
    running_version_id: uuid.UUID | None = Field(description="The version serving now, if any.")
    state: str
    desired_state: str
    since: datetime = Field(description="When the deployment reached this state.")


class ModelFootprint(BaseModel):
    """Where the model runs now (removed deployments are left out)."""

    model_id: uuid.UUID
    deployments: list[DeploymentPlace]


class ServingSpan(BaseModel):
    """A span in which one deployment served one version; `ended_at` null while it still does."""

    deployment_id: uuid.UUID
    device_id: uuid.UUID
    version_id: uuid.UUID
    started_at: datetime
    ended_at: datetime | None


class UsageCounts(BaseModel):
    """Gateway traffic through groups bound to the model."""

    requests: int = Field(description="Requests answered (errors included).")
    errors: int = Field(description="Requests answered with an error status or a failed stream.")
    prompt_tokens: int = Field(description="As the backends reported them (`usage`).")
    completion_tokens: int
    total_tokens: int


class UsageDay(UsageCounts):
    """The model's gateway traffic on one UTC day."""

    day: date


USAGE_EXAMPLE: dict[str, Any] = {
    "model_id": "0b4f3c1e-8a4d-4c4e-9a51-2f7d3c9e6a10",
    "from": "2026-03-01",
    "to": "2026-03-30",
    "days": [
        {
            "day": "2026-03-02",
            "requests": 120,
            "errors": 3,
            "prompt_tokens": 45210,
            "completion_tokens": 18004,
            "total_tokens": 63214,
        },
        {
            "day": "2026-03-03",
            "requests": 80,
            "errors": 0,
            "prompt_tokens": 30112,
            "completion_tokens": 11876,
            "total_tokens": 41988,
        },
    ],
    "totals": {
        "requests": 200,
        "errors": 3,
        "prompt_tokens": 75322,
        "completion_tokens": 29880,
        "total_tokens": 105202,
    },
}


class ModelUsage(BaseModel):
    """The model's gateway usage per UTC day in a date range, and the range's totals."""

    model_config = examples_config(USAGE_EXAMPLE, populate_by_name=True)

    model_id: uuid.UUID
    from_day: date = Field(alias="from", description="First day of the range (UTC).")
    to_day: date = Field(alias="to", description="Last day of the range (UTC), included.")
    days: list[UsageDay] = Field(description="Days with traffic, oldest first (others: none).")
    totals: UsageCounts
