"""The footprint API contract: where a model runs, and where it ran when."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


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
