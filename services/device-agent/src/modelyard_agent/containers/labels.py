"""The labels that mark what the agent made, and the filters that find it again."""

from __future__ import annotations

from uuid import UUID

LABEL_MANAGED = "io.modelyard.managed"
LABEL_DEVICE = "io.modelyard.device"
LABEL_MODEL = "io.modelyard.model"
LABEL_MODEL_NAME = "io.modelyard.model-name"
LABEL_VERSION = "io.modelyard.version"
LABEL_DEPLOYMENT = "io.modelyard.deployment"


def deployment_labels(device_id: UUID | str, deployment_id: UUID) -> dict[str, str]:
    """Return the labels of something this device's agent made for one deployment."""
    return {
        LABEL_MANAGED: "true",
        LABEL_DEVICE: str(device_id),
        LABEL_DEPLOYMENT: str(deployment_id),
    }


def label_filters(device_id: UUID | str, deployment_id: UUID | None = None) -> list[str]:
    """Return Docker label filters matching what this device's agent made (for one deployment)."""
    filters = [f"{LABEL_MANAGED}=true", f"{LABEL_DEVICE}={device_id}"]
    if deployment_id is not None:
        filters.append(f"{LABEL_DEPLOYMENT}={deployment_id}")
    return filters


def label_uuid(value: str | None) -> UUID | None:
    """Return the UUID a label holds, or None if it is missing or unreadable."""
    try:
        return UUID(value) if value else None
    except ValueError:
        return None
