"""The local API's response bodies."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field

from modelyard_common.contracts import DeploymentState, DesiredState


class ModelStatus(BaseModel):
    """One model on this device: what should run, what runs, where to call it."""

    model_name: str
    model_id: UUID
    deployment_id: UUID
    state: DeploymentState
    desired_state: DesiredState
    desired_version_id: UUID
    desired_version_number: int
    version_id: UUID | None = Field(description="The version serving calls now, if any.")
    version_number: int | None = None
    running: bool
    message: str = ""
    handlers: list[str]
    url: str = Field(description="Stable local URL prefix: POST {url}/{handler}.")


class ModelList(BaseModel):
    """Every model deployed on this device."""

    items: list[ModelStatus]


class ModelLogs(BaseModel):
    """The last lines a model's container wrote."""

    model_name: str
    deployment_id: UUID
    version_id: UUID | None
    lines: list[str]
