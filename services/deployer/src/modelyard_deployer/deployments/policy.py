"""The policy gate's part in running a deployment: its verdict, and what it leaves on the row."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.governance import RegistryConfirmation, Verdict
from modelyard_deployer.db import Deployment, Device
from modelyard_deployer.governance.models import require_open_model
from modelyard_deployer.governance.service import judge_targets


def flag(deployment: Deployment, verdict: Verdict | None) -> str:
    """Record the gate's warning on the deployment; return it as a suffix for history."""
    warning = verdict.warning if verdict else None
    deployment.policy_warning = warning
    return f" (policy warning: {warning})" if warning else ""


def judged_run(deployment: Deployment, verdict: Verdict | None) -> str:
    """Record that the gate let the deployment run now (see `enforcement`); return `flag`."""
    deployment.run_judged_at = utcnow()
    return flag(deployment, verdict)


async def judge_one(
    session: AsyncSession,
    *,
    registry: RegistryConfirmation,
    principal: Principal,
    deployment: Deployment,
    device: Device,
    authorization: str | None,
) -> Verdict:
    """Return the gate's verdict on running this deployment again (409 when refused)."""
    model = await require_open_model(
        session,
        http=registry.http,
        principal=principal,
        model_id=deployment.model_id,
        authorization=authorization,
    )
    verdicts = await judge_targets(
        session,
        registry=registry,
        model=model,
        targets=[device],
        authorization=authorization,
    )
    return verdicts[device.id]
