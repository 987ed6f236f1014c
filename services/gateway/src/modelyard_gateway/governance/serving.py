"""The serve judgement: which bound groups, and which (group, instance) pairs, the gate refuses.

The routing catalog asks this on every rebuild; the answers ride on its routes (a refusal is
the proxy's 403, a warning its `x-modelyard-policy-warning` header). Judged from the projection
only: the hot path never waits for the registry.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from modelyard_common.governance import ApprovalState, Gate, Governance
from modelyard_gateway.db import DeviceEndpoint, ModelGroup, ModelInstance
from modelyard_gateway.governance.served import (
    OTHER_WORKSPACE,
    UNKNOWN_MODEL,
    IngressIndex,
    Unservable,
    served_by,
)


@dataclass(slots=True)
class _Ask:
    """One question to the gate: may `registry_model_id` be served as group `name`?"""

    id: uuid.UUID
    workspace: str
    name: str
    registry_model_id: uuid.UUID | None


_UNSERVABLE = {
    UNKNOWN_MODEL: "the registry model it serves is not known to the gateway",
    OTHER_WORKSPACE: "it points at another workspace's device",
}


async def serve_verdicts(
    engine: AsyncEngine,
    governance: Governance | None,
    groups: Sequence[ModelGroup],
    members: Mapping[uuid.UUID, Sequence[uuid.UUID]],
    instances: Mapping[uuid.UUID, ModelInstance],
    endpoints: Sequence[DeviceEndpoint],
) -> tuple[
    dict[uuid.UUID, dict[str, str | None]],
    dict[tuple[uuid.UUID, uuid.UUID], dict[str, str | None]],
]:
    """Return the gate's refusal or warning per bound group, and per (group, instance)
    whose instance serves a registry model (from the projection).

    Governance is judged per instance: whatever group lists an instance that serves a
    registry model, bound or not, that model must be servable in that group.
    """
    enabled = [g for g in groups if g.enabled]
    if governance is None:
        return {}, {}
    index = await IngressIndex.build(endpoints)
    asks: list[_Ask] = [
        _Ask(g.id, g.workspace, g.name, g.registry_model_id)
        for g in enabled
        if g.registry_model_id is not None
    ]
    pairs: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}
    fixed: dict[tuple[uuid.UUID, uuid.UUID], dict[str, str | None]] = {}
    for group in enabled:
        for instance_id in members.get(group.id, []):
            row = instances.get(instance_id)
            if row is None:
                continue
            served = await served_by(row, index, group_model=group.registry_model_id)
            if isinstance(served, Unservable):
                fixed[(group.id, instance_id)] = {"refusal": _UNSERVABLE[served.why]}
                continue
            for model in served:
                ask_id = uuid.uuid4()
                pairs[ask_id] = (group.id, instance_id)
                asks.append(_Ask(ask_id, model.workspace, group.name, model.model_id))
    if not asks and not fixed:
        return {}, {}
    async with AsyncSession(engine) as session:
        judged = await governance.serving(session, asks) if asks else {}
        if fixed:
            workspaces = {g.id: g.workspace for g in enabled}
            gates = await governance.gates(session, set(workspaces.values()))
            for pair, refused in list(fixed.items()):
                gate = gates[workspaces[pair[0]]]
                if gate is Gate.off:
                    del fixed[pair]
                elif gate is Gate.warn:
                    fixed[pair] = {"warning": refused["refusal"]}
    verdicts: dict[uuid.UUID, dict[str, str | None]] = {}
    per_instance = fixed
    for ask_id, (standing, verdict) in judged.items():
        if verdict.reason is None:
            continue
        # Clients get the approval state, not who decided or why (that is for admins).
        if standing.approval is ApprovalState.restricted:
            said = "restricted to other model groups"
        else:
            said = standing.approval.value if standing.approval else "not approved"
        text = f"the model it serves is {said} under the workspace's policy"
        found: dict[str, str | None] = {"warning": text} if verdict.allowed else {"refusal": text}
        if ask_id in pairs:
            pair = pairs[ask_id]
            if not per_instance.get(pair, {}).get("refusal"):
                per_instance[pair] = found
        else:
            verdicts[ask_id] = found
    return verdicts, per_instance
