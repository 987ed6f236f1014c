"""Names and labels of what the agent makes in Docker for a deployment's versions."""

from __future__ import annotations

import re
from uuid import UUID

from modelyard_agent.containers.labels import (
    LABEL_MODEL,
    LABEL_MODEL_NAME,
    LABEL_VERSION,
    deployment_labels,
)
from modelyard_common.contracts import VersionSpec

#: Where a project without a Dockerfile is mounted (read-only), and the handler wrapper.
PROJECT_MOUNT = "/opt/modelyard/project"
WRAPPER_MOUNT = "/opt/modelyard/runtime/modelyard_handlers.py"


def built_image_tag(deployment_id: UUID, version_id: UUID) -> str:
    """Return the tag of the image built from a version's Dockerfile for one deployment."""
    return f"modelyard-built/{deployment_id.hex[:12]}:{version_id.hex}"


def network_name(deployment_id: UUID) -> str:
    """Return the Docker name of a deployment's own bridge network."""
    return f"modelyard-net-{deployment_id.hex}"


def container_name(model_name: str, deployment_id: UUID, version_id: UUID) -> str:
    """Return the Docker name of a version's container (readable, unique per deployment)."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", model_name.lower()).strip("-.")[:40] or "model"
    return f"modelyard-{slug}-{deployment_id.hex[:8]}-{version_id.hex[:8]}"


def version_labels(device_id: UUID, deployment_id: UUID, target: VersionSpec) -> dict[str, str]:
    """Return the labels of a version's container and built image."""
    return {
        **deployment_labels(device_id, deployment_id),
        LABEL_MODEL: str(target.model_id),
        LABEL_MODEL_NAME: target.model_name,
        LABEL_VERSION: str(target.id),
    }
