"""Rules of bound groups: a ready endpoint joins each group bound to its model; gone, it leaves."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import EndpointAnnouncement
from modelyard_gateway.crypto import SecretBox
from modelyard_gateway.db import ModelInstance, announce_config_change
from modelyard_gateway.endpoints import repository

log = logging.getLogger("modelyard.gateway.endpoints")


async def in_order(session: AsyncSession, *, announcement: EndpointAnnouncement) -> bool:
    """Return whether this endpoint event is newer than the last applied for its deployment.

    A version switch is gone-then-ready: applied the other way round, the group would silently
    lose the new instance. Events without a sequence (an older deployer) always apply.
    """
    if announcement.sequence <= 0:
        return True
    return await repository.advance_sequence(
        session, deployment_id=announcement.deployment_id, sequence=announcement.sequence
    )


def ingress_credential(
    announcement: EndpointAnnouncement, *, seal_key: str, box: SecretBox
) -> str | None:
    """Return the device's ingress credential re-sealed with the gateway's at-rest key."""
    if not announcement.ingress_token_sealed:
        return None
    try:
        credential = SecretBox(seal_key).open(announcement.ingress_token_sealed)
    except ValueError:
        log.error(
            "endpoint of deployment %s carries a credential the ingress seal key cannot open",
            announcement.deployment_id,
        )
        return None
    return box.seal(credential)


async def endpoint_ready(
    session: AsyncSession,
    *,
    announcement: EndpointAnnouncement,
    token_sealed: str | None = None,
) -> int:
    """Add the endpoint as an instance to each bound group; return how many groups got it.

    `token_sealed` (sealed at rest) is the credential the device's ingress wants: the
    instance presents it as `Authorization: Bearer`, and no API ever shows it.
    """
    url = urlsplit(announcement.base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        return 0
    port = url.port or (443 if url.scheme == "https" else 80)
    await repository.record_endpoint(
        session,
        deployment_id=announcement.deployment_id,
        workspace=announcement.workspace,
        model_id=announcement.model_id,
        host=url.hostname,
        port=port,
        path=url.path.rstrip("/"),
    )
    # Every replica learns the device's ingress address (hand-made instances there are judged
    # as this model), whether or not a group is bound to it.
    await announce_config_change(session)
    joined = 0
    groups = await repository.bound_groups(
        session, model_id=announcement.model_id, workspace=announcement.workspace
    )
    for group in groups:
        inst = await repository.deployment_instance(
            session, workspace=group.workspace, deployment_id=announcement.deployment_id
        )
        if inst is None:
            inst = ModelInstance(
                id=uuid.uuid4(),
                workspace=group.workspace,
                name=f"deployment-{announcement.deployment_id}",
                kind="local",
                host=url.hostname,
                port=port,
                protocol=url.scheme,
                path_prefix=url.path.rstrip("/"),
                token_sealed=token_sealed,
                extra_headers={},
                upstream_model=group.name,
                default_params={},
                param_caps={},
                enabled=True,
                revision=1,
                deployment_id=announcement.deployment_id,
                device_labels=announcement.device_labels,
                registry_model_id=announcement.model_id,
            )
            session.add(inst)
            await session.flush()
        else:
            inst.host, inst.port, inst.protocol = url.hostname, port, url.scheme
            inst.path_prefix = url.path.rstrip("/")
            inst.token_sealed = token_sealed
            inst.device_labels = announcement.device_labels
            inst.registry_model_id = announcement.model_id
            inst.revision += 1
        if not await repository.is_member(session, group_id=group.id, instance_id=inst.id):
            await repository.append_member(session, group_id=group.id, instance_id=inst.id)
        await repository.reorder_members(session, group=group)
        joined += 1
    return joined


async def endpoint_gone(session: AsyncSession, *, announcement: EndpointAnnouncement) -> int:
    """Remove the instances created for the deployment; return how many were removed."""
    removed = await repository.remove_deployment_instances(
        session, deployment_id=announcement.deployment_id
    )
    forgotten = await repository.forget_endpoint(session, deployment_id=announcement.deployment_id)
    if removed or forgotten:
        await announce_config_change(session)
    return removed


async def ask_deployer_to_announce(
    *, deployer_url: str, model_id: uuid.UUID, authorization: str | None
) -> int | None:
    """Ask the deployer to announce the model's running endpoints again; return how many.

    Called once a bound group is committed, as the person who bound it: the endpoint events
    that follow fill the group like any other. None when the deployer could not be asked (the
    group then fills as endpoints change).
    """
    url = f"{deployer_url.rstrip('/')}/v1/models/{model_id}/endpoints/announce"
    headers = {"Authorization": authorization} if authorization else {}
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(url, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("could not ask the deployer for model %s endpoints: %s", model_id, exc)
        return None
    if response.status_code != 202:
        log.warning(
            "the deployer answered %s when asked for model %s endpoints",
            response.status_code,
            model_id,
        )
        return None
    announced: int = response.json().get("announced", 0)
    return announced
