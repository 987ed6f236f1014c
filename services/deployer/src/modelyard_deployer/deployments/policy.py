"""The policy gate's part in running a deployment: its verdict, and what it leaves on the row."""

from __future__ import annotations

from modelyard_common.db import utcnow
from modelyard_common.governance import Verdict
from modelyard_deployer.db import Deployment, Device
from modelyard_deployer.deployments.deploying import Deploying


def flag(deployment: Deployment, verdict: Verdict | None) -> str:
    """Record the gate's warning on the deployment; return it as a suffix for history."""
    warning = verdict.warning if verdict else None
    deployment.policy_warning = warning
    return f" (policy warning: {warning})" if warning else ""


def judged_run(deployment: Deployment, verdict: Verdict | None) -> str:
    """Record that the gate let the deployment run now (see `enforcement`); return `flag`."""
    deployment.run_judged_at = utcnow()
    return flag(deployment, verdict)


async def judge_one(deploying: Deploying, deployment: Deployment, device: Device) -> Verdict:
    """Return the gate's verdict on running this deployment again (409 when refused)."""
    model = await deploying.open_model(deployment.model_id)
    return (await deploying.judge(model, [device]))[device.id]
