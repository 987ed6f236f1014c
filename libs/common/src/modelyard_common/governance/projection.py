"""One service's projection of the registry's approvals and gates: tables, reads, event upserts."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import DateTime, String, Text, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from modelyard_common.events import CloudEvent
from modelyard_common.governance.rules import (
    MODEL_DELETED,
    MODEL_EVENT_PREFIX,
    POLICY_UPDATED,
    STOPPING,
    ApprovalState,
    Conditions,
    Gate,
    ModelApprovalEvent,
    PolicyEvent,
    Standing,
    Verdict,
    judge_serve,
)

__all__ = [
    "BoundGroup",
    "Governance",
    "ModelApprovalMixin",
    "WorkspacePolicyMixin",
    "governance_ddl",
    "governance_drop_ddl",
    "standing_of",
]

log = logging.getLogger("modelyard.governance")


class ModelApprovalMixin:
    """Columns of a service's `model_approvals` projection (one row per registry model)."""

    model_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workspace: Mapped[str] = mapped_column(String(200))  # indexed by `governance_ddl`
    name: Mapped[str] = mapped_column(String(200))
    approval: Mapped[str] = mapped_column(String(20))
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Time of the event (or HTTP read) the row reflects: an older event never overwrites it.
    source_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WorkspacePolicyMixin:
    """Columns of a service's `workspace_policies` projection (one row per workspace)."""

    workspace: Mapped[str] = mapped_column(String(200), primary_key=True)
    gate: Mapped[str] = mapped_column(String(10))
    updated_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    source_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def governance_ddl(schema: str) -> list[str]:
    """Return the idempotent DDL of the governance projection, for a service's migrations."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {schema}.model_approvals (
            model_id uuid PRIMARY KEY,
            workspace varchar(200) NOT NULL,
            name varchar(200) NOT NULL,
            approval varchar(20) NOT NULL,
            conditions jsonb,
            decided_by varchar(320),
            comment text,
            source_time timestamptz NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        f"CREATE INDEX IF NOT EXISTS ix_{schema}_model_approvals_workspace"
        f" ON {schema}.model_approvals (workspace)",
        f"""CREATE TABLE IF NOT EXISTS {schema}.workspace_policies (
            workspace varchar(200) PRIMARY KEY,
            gate varchar(10) NOT NULL,
            updated_by varchar(320),
            source_time timestamptz NOT NULL
        )""",
    ]


def governance_drop_ddl(schema: str) -> list[str]:
    """Return the DDL that undoes `governance_ddl`."""
    return [
        f"DROP TABLE IF EXISTS {schema}.workspace_policies",
        f"DROP TABLE IF EXISTS {schema}.model_approvals",
    ]


class BoundGroup(Protocol):
    """A gateway group that may follow a registry model (what `Governance.serving` reads)."""

    id: uuid.UUID
    workspace: str
    name: str
    registry_model_id: uuid.UUID | None


class Governance:
    """One service's projection: reads standings, applies registry events, records HTTP reads."""

    def __init__(
        self,
        approvals: type[ModelApprovalMixin],
        policies: type[WorkspacePolicyMixin],
        *,
        default_gate: Gate,
    ) -> None:
        self.approvals = approvals
        self.policies = policies
        self.default_gate = default_gate

    async def gate(self, session: AsyncSession, workspace: str) -> Gate:
        """Return the workspace's gate (the default when it never chose one)."""
        found = await session.scalar(
            select(self.policies.gate).where(self.policies.workspace == workspace)
        )
        return Gate(found) if found else self.default_gate

    async def gates(self, session: AsyncSession, workspaces: Collection[str]) -> dict[str, Gate]:
        """Return the gate of each workspace (`default_gate` where none was chosen)."""
        rows = (
            await session.execute(
                select(self.policies.workspace, self.policies.gate).where(
                    self.policies.workspace.in_(list(workspaces))
                )
            )
        ).all()
        chosen = {workspace: Gate(gate) for workspace, gate in rows}
        return {w: chosen.get(w, self.default_gate) for w in workspaces}

    async def constrained(
        self, session: AsyncSession, workspace: str
    ) -> Sequence[ModelApprovalMixin]:
        """Return the workspace's models whose approval limits where they run (a new gate
        re-judges these: blocked, retired, restricted)."""
        limiting = [state.value for state in (*STOPPING, ApprovalState.restricted)]
        return (
            await session.scalars(
                select(self.approvals)
                .where(self.approvals.workspace == workspace, self.approvals.approval.in_(limiting))
                .execution_options(populate_existing=True)
            )
        ).all()

    async def serving(
        self, session: AsyncSession, groups: Sequence[BoundGroup]
    ) -> dict[uuid.UUID, tuple[Standing, Verdict]]:
        """Return, per group that follows a model, its model's standing and the serve verdict.

        Two queries whatever the number of groups (the routing catalog judges them all).
        """
        bound = [(g, g.registry_model_id) for g in groups if g.registry_model_id is not None]
        if not bound:
            return {}
        approvals = await self.standings(session, [model_id for _, model_id in bound])
        gates = await self.gates(session, {g.workspace for g, _ in bound})
        result = {}
        for group, model_id in bound:
            row = approvals.get(model_id)
            gate = gates[group.workspace]
            standing = (
                standing_of(row, gate)
                if row is not None and row.workspace == group.workspace
                else Standing(gate=gate, approval=None)
            )
            name = standing.model_name or str(model_id)
            result[group.id] = (standing, judge_serve(standing, model=name, group=group.name))
        return result

    async def standing(
        self, session: AsyncSession, *, workspace: str, model_id: uuid.UUID
    ) -> Standing:
        """Return the model's standing as projected here (approval None when never heard of)."""
        gate = await self.gate(session, workspace)
        row = await session.scalar(
            select(self.approvals)
            .where(self.approvals.model_id == model_id, self.approvals.workspace == workspace)
            # The upserts are Core statements: a row this session loaded before is stale.
            .execution_options(populate_existing=True)
        )
        if row is None:
            return Standing(gate=gate, approval=None)
        return standing_of(row, gate)

    async def standings(
        self, session: AsyncSession, model_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, ModelApprovalMixin]:
        """Return the projected rows of several models, by id."""
        if not model_ids:
            return {}
        rows = (
            await session.scalars(
                select(self.approvals)
                .where(self.approvals.model_id.in_(list(model_ids)))
                .execution_options(populate_existing=True)
            )
        ).all()
        return {row.model_id: row for row in rows}

    async def record_model(
        self, session: AsyncSession, model: ModelApprovalEvent, *, source_time: datetime
    ) -> bool:
        """Upsert a model's approval unless a newer source is already applied; return if it was."""
        return await _upsert_if_newer(
            session,
            self.approvals,
            "model_id",
            {
                "model_id": model.id,
                "workspace": model.workspace,
                "name": model.name,
                "approval": model.approval.value,
                "conditions": model.approval_conditions,
                "decided_by": model.updated_by,
                "comment": model.approval_comment,
                "source_time": source_time,
            },
            touch=True,
        )

    async def record_policy(
        self, session: AsyncSession, policy: PolicyEvent, *, source_time: datetime
    ) -> bool:
        """Upsert a workspace's gate unless a newer one is already applied; return if it was."""
        return await _upsert_if_newer(
            session,
            self.policies,
            "workspace",
            {
                "workspace": policy.workspace,
                "gate": policy.gate.value,
                "updated_by": policy.updated_by,
                "source_time": source_time,
            },
        )

    async def apply_event(self, session: AsyncSession, event: CloudEvent) -> Standing | None:
        """Apply one registry event; return the model's new standing when its approval changed.

        A deleted model is projected as `retired`: nothing may run it any more.
        """
        if event.type == POLICY_UPDATED:
            try:
                policy = PolicyEvent.model_validate(event.data)
            except ValidationError:
                log.warning("ignoring %s event %s without a readable policy", event.type, event.id)
                return None
            await self.record_policy(session, policy, source_time=event.time)
            return None
        if not event.type.startswith(MODEL_EVENT_PREFIX):
            return None
        try:
            model = ModelApprovalEvent.model_validate(event.data)
        except ValidationError:
            log.warning("ignoring %s event %s without a readable model", event.type, event.id)
            return None
        if event.type == MODEL_DELETED:
            model = model.model_copy(
                update={"approval": ApprovalState.retired, "approval_comment": "deleted"}
            )
        before = await session.scalar(
            select(self.approvals.approval).where(self.approvals.model_id == model.id)
        )
        if not await self.record_model(session, model, source_time=event.time):
            return None  # older than what is applied
        if before == model.approval.value:
            return None
        return await self.standing(session, workspace=model.workspace, model_id=model.id)


def standing_of(row: ModelApprovalMixin, gate: Gate) -> Standing:
    """Return the standing a projected row gives under `gate`."""
    return Standing(
        gate=gate,
        approval=ApprovalState(row.approval),
        conditions=Conditions.model_validate(row.conditions) if row.conditions else None,
        decided_by=row.decided_by,
        comment=row.comment,
        model_name=row.name,
    )


async def _upsert_if_newer(
    session: AsyncSession, table: Any, key: str, values: dict[str, Any], *, touch: bool = False
) -> bool:
    """Upsert the row `values` of `table` unless it holds a newer `source_time`; return if it did.

    Events arrive out of order across relays; only a newer one changes the row. `touch` also
    sets the row's `updated_at`.
    """
    stmt = insert(table).values(**values)
    changes: dict[str, Any] = {name: stmt.excluded[name] for name in values if name != key}
    if touch:
        changes["updated_at"] = func.now()
    upsert = stmt.on_conflict_do_update(
        index_elements=[getattr(table, key)],
        set_=changes,
        where=table.source_time <= stmt.excluded.source_time,
    ).returning(getattr(table, key))
    return (await session.scalar(upsert)) is not None
