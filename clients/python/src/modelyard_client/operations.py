"""Every call the SDK makes, once: each function returns a Call that either client sends.

Names follow the services' OpenAPI operationIds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from modelyard_client._core import (
    Call,
    ProgressCallback,
    Service,
    Upload,
    action,
    create,
    identity,
    patch,
    read,
)
from modelyard_client.types import (
    AIModel,
    AISystem,
    ApiKey,
    Approval,
    Deployment,
    DeploymentEvent,
    Device,
    Group,
    HistoryEntry,
    Instance,
    InstanceCheck,
    Link,
    LoggedRequest,
    ModelVersion,
    Page,
    Policy,
    Rollout,
    RolloutEvent,
    RolloutSummary,
)

RegistryKind = Literal["models", "systems"]
GatewayKind = Literal["groups", "instances", "keys"]
DeploymentAction = Literal["start", "stop", "restart", "rollback", "cancel"]
Kind = TypeVar("Kind", RegistryKind, GatewayKind)


class _Kinds(Generic[Kind]):
    """The routes that the kinds of resource of one service share, `/v1/{kind}` and
    `/v1/{kind}/{id}`: the registry's models and systems, the gateway's groups, instances, keys."""

    def __init__(self, service: Service) -> None:
        self.service: Service = service

    def list(self, kind: Kind, **filters: Any) -> Call[Page[Any]]:
        """Return list_{kind} with filters (limit, sort, ...; the registry's: q, tag, archived)."""
        return read("GET", self.service, f"/v1/{kind}", **filters)

    def get(self, kind: Kind, resource_id: str) -> Call[Any]:
        """Return get_{one of kind}."""
        return read("GET", self.service, f"/v1/{kind}/{resource_id}")

    def create(self, kind: Kind, body: Mapping[str, Any]) -> Call[Any]:
        """Return create_{one of kind}."""
        return create(self.service, f"/v1/{kind}", dict(body))

    def delete(self, kind: Kind, resource_id: str) -> Call[None]:
        """Return delete_{one of kind} (a hard delete; for keys: revoke_key)."""
        return read("DELETE", self.service, f"/v1/{kind}/{resource_id}")


# -- registry: models and systems share their routes ----------------------------------------
_registry = _Kinds[RegistryKind]("registry")
list_registry = _registry.list  # list_models / list_systems
get_registry = _registry.get  # get_model / get_system
create_registry = _registry.create  # create_model / create_system
delete_registry = _registry.delete  # delete_model / delete_system (hard delete)


def update_registry(
    kind: RegistryKind, resource_id: str, changes: Mapping[str, Any], *, etag: str
) -> Call[Any]:
    """Return update_model / update_system guarded by `etag`."""
    return patch("registry", f"/v1/{kind}/{resource_id}", dict(changes), etag=etag)


def archive_registry(kind: RegistryKind, resource_id: str, *, restore: bool = False) -> Call[Any]:
    """Return archive_* or unarchive_*."""
    verb = "unarchive" if restore else "archive"
    return action("registry", f"/v1/{kind}/{resource_id}/{verb}")


def registry_history(
    kind: RegistryKind, resource_id: str, **params: Any
) -> Call[Page[HistoryEntry]]:
    """Return list_model_history / list_system_history."""
    return read("GET", "registry", f"/v1/{kind}/{resource_id}/history", **params)


def list_model_systems(model_id: str) -> Call[list[Link]]:
    """Return list_model_systems: the systems using a model, with descriptions of use."""
    return read("GET", "registry", f"/v1/models/{model_id}/systems")


def list_system_models(system_id: str) -> Call[list[Link]]:
    """Return list_system_models."""
    return read("GET", "registry", f"/v1/systems/{system_id}/models")


def link_model(system_id: str, model_id: str, description_of_use: str) -> Call[Link]:
    """Return link_model."""
    body = {"model_id": model_id, "description_of_use": description_of_use}
    return create("registry", f"/v1/systems/{system_id}/models", body)


def unlink_model(system_id: str, model_id: str) -> Call[None]:
    """Return unlink_model."""
    return read("DELETE", "registry", f"/v1/systems/{system_id}/models/{model_id}")


def get_model(model_id: str) -> Call[AIModel]:
    """Return get_model."""
    return get_registry("models", model_id)


def get_system(system_id: str) -> Call[AISystem]:
    """Return get_system."""
    return get_registry("systems", system_id)


def get_model_approval(model_id: str) -> Call[Approval]:
    """Return get_model_approval."""
    return read("GET", "registry", f"/v1/models/{model_id}/approval")


def request_model_review(model_id: str, comment: str) -> Call[Approval]:
    """Return request_model_review (the model moves to in_review)."""
    return action("registry", f"/v1/models/{model_id}/approval/request", {"comment": comment})


def decide_model_approval(
    model_id: str,
    decision: Literal["approved", "restricted", "blocked"],
    comment: str,
    conditions: Mapping[str, Any] | None = None,
) -> Call[Approval]:
    """Return decide_model_approval (another person than the requester; approver or admin)."""
    body: dict[str, Any] = {"decision": decision, "comment": comment}
    if conditions is not None:
        body["conditions"] = dict(conditions)
    return action("registry", f"/v1/models/{model_id}/approval/decision", body)


def retire_model(model_id: str, comment: str) -> Call[Approval]:
    """Return retire_model."""
    return action("registry", f"/v1/models/{model_id}/approval/retire", {"comment": comment})


def get_policy() -> Call[Policy]:
    """Return get_policy (the workspace's gate: enforce, warn or off)."""
    return read("GET", "registry", "/v1/policy")


def set_policy(gate: Literal["enforce", "warn", "off"], comment: str = "") -> Call[Policy]:
    """Return set_policy (admin); setting the same gate twice changes nothing."""
    return Call(
        "PUT",
        "registry",
        "/v1/policy",
        identity,
        json={"gate": gate, "comment": comment},
        idempotent=True,
    )


# -- deployer ------------------------------------------------------------------------------
def create_model_version(
    model_id: str,
    zip_path: Path,
    *,
    manifest: Mapping[str, Any] | None = None,
    title: str | None = None,
    comment: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> Call[ModelVersion]:
    """Return create_model_version: the zip streamed from disk, with an Idempotency-Key."""
    import json

    fields = {"title": title, "comment": comment}
    if manifest is not None:
        fields["manifest"] = json.dumps(manifest)
    upload = Upload(
        path=zip_path,
        filename=zip_path.name,
        fields={k: v for k, v in fields.items() if v is not None},
        on_progress=on_progress,
    )
    return replace(create("deployer", f"/v1/models/{model_id}/versions", None), upload=upload)


def list_model_versions(model_id: str, **params: Any) -> Call[Page[ModelVersion]]:
    """Return list_model_versions."""
    return read("GET", "deployer", f"/v1/models/{model_id}/versions", **params)


def get_model_version(version_id: str) -> Call[ModelVersion]:
    """Return get_model_version."""
    return read("GET", "deployer", f"/v1/versions/{version_id}")


def delete_model_version(version_id: str) -> Call[None]:
    """Return delete_model_version."""
    return read("DELETE", "deployer", f"/v1/versions/{version_id}")


def list_devices(**filters: Any) -> Call[Page[Device]]:
    """Return list_devices (filters: status, name, label)."""
    return read("GET", "deployer", "/v1/devices", **filters)


def get_device(device_id: str) -> Call[Device]:
    """Return get_device."""
    return read("GET", "deployer", f"/v1/devices/{device_id}")


def create_device(name: str, labels: Mapping[str, str]) -> Call[Device]:
    """Return create_device (the answer carries the device token, once)."""
    return create("deployer", "/v1/devices", {"name": name, "labels": dict(labels)})


def revoke_device(device_id: str) -> Call[None]:
    """Return revoke_device."""
    return read("DELETE", "deployer", f"/v1/devices/{device_id}")


def rotate_device_token(device_id: str) -> Call[Device]:
    """Return rotate_device_token."""
    return action("deployer", f"/v1/devices/{device_id}/token")


def create_deployment(
    version_id: str,
    *,
    device_ids: list[str] | None = None,
    selector: Mapping[str, str] | None = None,
) -> Call[dict[str, list[Deployment]]]:
    """Return create_deployment: one deployment per targeted device."""
    body: dict[str, Any] = {"version_id": version_id}
    if device_ids:
        body["device_ids"] = device_ids
    if selector:
        body["selector"] = dict(selector)
    return create("deployer", "/v1/deployments", body)


def list_deployments(**filters: Any) -> Call[Page[Deployment]]:
    """Return list_deployments (filters: state, desired_state, model_id, device_id, version_id)."""
    return read("GET", "deployer", "/v1/deployments", **filters)


def get_deployment(deployment_id: str) -> Call[Deployment]:
    """Return get_deployment."""
    return read("GET", "deployer", f"/v1/deployments/{deployment_id}")


def get_deployment_logs(
    deployment_id: str,
    *,
    tail: int | None = None,
    follow: bool = False,
    since: str | None = None,
) -> Call[None]:
    """Return get_deployment_logs: the container's last `tail` lines, asked of its device.

    Send it with `stream_bytes`: the answer is `text/plain`, one line per line. With `follow`
    it stays open and brings each new line as the container writes it (no read timeout: a quiet
    container sends nothing) until the caller stops reading or the deployer's bound ends it.
    `since` (RFC 3339) keeps only lines written from then on. The device answers or the call
    fails: 503 `device-offline`, 504 `device-timeout`, 409 `no-container`.
    """
    call = read(
        "GET",
        "deployer",
        f"/v1/deployments/{deployment_id}/logs",
        tail=tail,
        follow="true" if follow else None,
        since=since,
    )
    return replace(call, open_ended=follow)


def get_deployment_history(deployment_id: str, **params: Any) -> Call[Page[DeploymentEvent]]:
    """Return get_deployment_history."""
    return read("GET", "deployer", f"/v1/deployments/{deployment_id}/history", **params)


def deployment_action(deployment_id: str, verb: DeploymentAction) -> Call[Deployment]:
    """Return start/stop/restart/rollback/cancel_deployment."""
    return action("deployer", f"/v1/deployments/{deployment_id}/{verb}")


def remove_deployment(deployment_id: str) -> Call[Deployment]:
    """Return remove_deployment (the device removes the container)."""
    return read("DELETE", "deployer", f"/v1/deployments/{deployment_id}")


RolloutAction = Literal["pause", "resume", "abort"]


def create_rollout(
    version_id: str,
    *,
    waves: list[Mapping[str, Any]],
    device_ids: list[str] | None = None,
    selector: Mapping[str, str] | None = None,
    soak_s: float | None = None,
    abort: Mapping[str, Any] | None = None,
    offline_timeout_s: float | None = None,
) -> Call[Rollout]:
    """Return create_rollout: the version to the devices in `waves` (the first is the canary)."""
    body: dict[str, Any] = {"version_id": version_id, "waves": [dict(w) for w in waves]}
    if device_ids:
        body["device_ids"] = device_ids
    if selector:
        body["selector"] = dict(selector)
    if soak_s is not None:
        body["soak_s"] = soak_s
    if abort:
        body["abort"] = dict(abort)
    if offline_timeout_s is not None:
        body["offline_timeout_s"] = offline_timeout_s
    return create("deployer", "/v1/rollouts", body)


def list_rollouts(**filters: Any) -> Call[Page[RolloutSummary]]:
    """Return list_rollouts (filters: state, model_id)."""
    return read("GET", "deployer", "/v1/rollouts", **filters)


def get_rollout(rollout_id: str) -> Call[Rollout]:
    """Return get_rollout: its waves' and devices' progress."""
    return read("GET", "deployer", f"/v1/rollouts/{rollout_id}")


def get_rollout_history(rollout_id: str, **params: Any) -> Call[Page[RolloutEvent]]:
    """Return get_rollout_history."""
    return read("GET", "deployer", f"/v1/rollouts/{rollout_id}/history", **params)


def rollout_action(rollout_id: str, verb: RolloutAction) -> Call[Rollout]:
    """Return pause/resume/abort_rollout."""
    return action("deployer", f"/v1/rollouts/{rollout_id}/{verb}")


# -- gateway: groups, instances and keys share their routes ---------------------------------
_gateway = _Kinds[GatewayKind]("gateway")
list_gateway = _gateway.list  # list_groups / list_instances / list_keys
get_gateway = _gateway.get  # get_group / get_instance / get_key
create_gateway = _gateway.create  # create_group / create_instance / create_key
delete_gateway = _gateway.delete  # delete_group / delete_instance / revoke_key


def get_group(group_id: str) -> Call[Group]:
    """Return get_group."""
    return get_gateway("groups", group_id)


def get_instance(instance_id: str) -> Call[Instance]:
    """Return get_instance."""
    return get_gateway("instances", instance_id)


def create_key(
    name: str,
    groups: list[str],
    *,
    limits: Mapping[str, int | None] | None = None,
    expires_at: str | None = None,
) -> Call[ApiKey]:
    """Return create_key (the answer carries the key, once), with its limits and expiry."""
    body: dict[str, Any] = {"name": name, "groups": groups}
    if limits:
        body["limits"] = dict(limits)
    if expires_at is not None:
        body["expires_at"] = expires_at
    return create_gateway("keys", body)


def update_key(key_id: str, changes: Mapping[str, Any], *, etag: str) -> Call[ApiKey]:
    """Return update_key (name, `limits` as a whole, `expires_at`) guarded by `etag`."""
    return patch("gateway", f"/v1/keys/{key_id}", dict(changes), etag=etag)


def get_workspace_limits() -> Call[dict[str, Any]]:
    """Return get_workspace_limits: the ceiling every key of the workspace shares."""
    return read("GET", "gateway", "/v1/limits")


def update_workspace_limits(
    changes: Mapping[str, int | None], *, etag: str
) -> Call[dict[str, Any]]:
    """Return update_workspace_limits guarded by `etag` ("0" before the first change)."""
    return patch("gateway", "/v1/limits", dict(changes), etag=etag)


def check_instance(instance_id: str) -> Call[InstanceCheck]:
    """Return check_instance: probe the backend now."""
    return action("gateway", f"/v1/instances/{instance_id}/check")


RequestExportFormat = Literal["csv", "jsonl"]


def list_requests(**filters: Any) -> Call[Page[LoggedRequest]]:
    """Return list_requests: the workspace's request log, newest first.

    Filters: since, until (RFC 3339), key_id, group, status, status_class (`4xx`), error_cause,
    registry_model_id; and limit, cursor, sort (`-at` or `at`).
    """
    return read("GET", "gateway", "/v1/requests", **filters)


def export_requests(format: RequestExportFormat = "csv", **filters: Any) -> Call[None]:
    """Return export_requests: every matching request as CSV or JSON lines.

    Send it with `stream_bytes` (or `download`): the answer is streamed, not JSON. The filters
    are those of `list_requests` (without paging).
    """
    return read("GET", "gateway", "/v1/requests/export", format=format, **filters)


def chat_completion(group: str, messages: list[dict[str, Any]], **params: Any) -> Call[Any]:
    """Return create_chat_completion (non-streaming; the SDK streams with `chat_stream`)."""
    body = {"model": group, "messages": messages, **params}
    return action("gateway", "/v1/chat/completions", body)


SERVICES: tuple[Service, ...] = ("registry", "deployer", "gateway")
