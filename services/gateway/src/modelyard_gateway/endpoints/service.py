"""Rules of bound groups: a ready endpoint joins each group bound to its model; gone, it leaves."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import EndpointAnnouncement
from modelyard_gateway.db import ModelInstance, announce_config_change
from modelyard_gateway.endpoints import repository


async def endpoint_ready(session: AsyncSession, *, announcement: EndpointAnnouncement) -> int:
    """Add the endpoint as an instance to each bound group; return how many groups got it."""
    url = urlsplit(announcement.base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        return 0
    port = url.port or (443 if url.scheme == "https" else 80)
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
                extra_headers={},
                upstream_model=group.name,
                default_params={},
                param_caps={},
                enabled=True,
                revision=1,
                deployment_id=announcement.deployment_id,
                device_labels=announcement.device_labels,
            )
            session.add(inst)
            await session.flush()
        else:
            inst.host, inst.port, inst.protocol = url.hostname, port, url.scheme
            inst.path_prefix = url.path.rstrip("/")
            inst.device_labels = announcement.device_labels
            inst.revision += 1
        if not await repository.is_member(session, group_id=group.id, instance_id=inst.id):
            await repository.append_member(session, group_id=group.id, instance_id=inst.id)
        await repository.reorder_members(session, group=group)
        joined += 1
    if joined:
        await announce_config_change(session)
    return joined


async def endpoint_gone(session: AsyncSession, *, announcement: EndpointAnnouncement) -> int:
    """Remove the instances created for the deployment; return how many were removed."""
    removed = await repository.remove_deployment_instances(
        session, deployment_id=announcement.deployment_id
    )
    if removed:
        await announce_config_change(session)
    return removed
