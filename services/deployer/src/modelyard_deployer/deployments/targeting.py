"""The devices a deployment request targets: listed by id, or matched by a label selector."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.errors import UnprocessableError, field_error
from modelyard_deployer.db import Device
from modelyard_deployer.deployments import fleet_repository as fleet
from modelyard_deployer.deployments import schemas


async def target_devices(
    session: AsyncSession, *, principal: Principal, body: schemas.DeploymentCreate
) -> list[Device]:
    """Return the live target devices, ordered by id (422 naming what matches nothing)."""
    if body.selector is not None:
        found = await fleet.matching_selector(
            session, workspace=principal.workspace, selector=body.selector
        )
        if not found:
            raise UnprocessableError(
                "No registered device matches the selector.",
                errors=[
                    field_error(["body", "selector"], message="matches no device", type="no_match")
                ],
            )
        # Rows are locked device by device: one order (by id) for every request, no deadlock.
        return sorted(found, key=lambda d: d.id)
    wanted = list(dict.fromkeys(body.device_ids or []))
    found = await fleet.live_by_ids(session, workspace=principal.workspace, device_ids=wanted)
    known = {d.id for d in found}
    missing = [(i, d) for i, d in enumerate(wanted) if d not in known]
    if missing:
        raise UnprocessableError(
            "Some devices do not exist in this workspace (or are revoked).",
            errors=[
                field_error(
                    ["body", "device_ids", i], message=f"no device {device_id}", type="not_found"
                )
                for i, device_id in missing
            ],
        )
    return sorted(found, key=lambda d: d.id)
