"""The policy gate: what registry approvals allow the deployer to ship and the gateway to serve.

The registry decides (a model's `approval`, a workspace's `gate`); the deployer and the gateway
enforce, each from its own projection of `registry.model.*` and `registry.policy.*` events, so
the gate holds while the registry is down. Both projections are the tables below, migrated by
each service (`governance_ddl`), and both judge with the same functions.

Gates, per workspace:
- `enforce`: refuse what the approval does not allow (deploy, start, bind, serve);
- `warn`: allow it, and say so on every step (responses, history, logs);
- `off`: the approval is recorded and shown, nothing is checked.

A workspace that never chose a gate gets the service's `policy_default_gate` (`enforce` unless
configured; every service of one installation must agree).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import DateTime, String, Text, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from modelyard_common.errors import ServiceUnavailableError
from modelyard_common.events import CloudEvent

log = logging.getLogger("modelyard.governance")

MODEL_EVENT_PREFIX = "registry.model."
MODEL_DELETED = "registry.model.deleted"
POLICY_UPDATED = "registry.policy.updated"
GOVERNANCE_ROUTING_KEYS = ("registry.model.*", "registry.policy.*")
POLICY_PROBLEM = "policy-refused"


class Gate(StrEnum):
    """How a workspace's approvals are applied to deploying and serving."""

    enforce = "enforce"
    warn = "warn"
    off = "off"


class ApprovalState(StrEnum):
    """Where a model stands in review; only `approved` and `restricted` may run."""

    draft = "draft"
    in_review = "in_review"
    approved = "approved"
    restricted = "restricted"
    blocked = "blocked"
    retired = "retired"


RUNNABLE = frozenset({ApprovalState.approved, ApprovalState.restricted})
# Deployments already running are stopped, and bound groups stop serving, only on these: a model
# sent back to `draft` by an edit (re-approval required) keeps what it runs until decided.
STOPPING = frozenset({ApprovalState.blocked, ApprovalState.retired})


class Conditions(BaseModel):
    """What a `restricted` approval allows (the registry's `approval_conditions`)."""

    model_config = ConfigDict(extra="ignore")

    text: str = ""
    device_labels: dict[str, list[str]] = Field(default_factory=dict)
    gateway_groups: list[str] = Field(default_factory=list)

    def labels_missing(self, labels: Mapping[str, str]) -> list[str]:
        """Return the `key in (values)` conditions a device with these labels fails."""
        return [
            f"{key} in ({', '.join(values)})"
            for key, values in sorted(self.device_labels.items())
            if labels.get(key) not in values
        ]


@dataclass(frozen=True, slots=True)
class Standing:
    """What a service knows of one model's approval, and the gate of its workspace."""

    gate: Gate
    approval: ApprovalState | None  # None: the model's approval is not known here
    conditions: Conditions | None = None
    decided_by: str | None = None
    comment: str | None = None
    model_name: str | None = None

    def describe(self) -> str:
        """Return the approval in words, e.g. `blocked (by alice: bias found)`."""
        if self.approval is None:
            return "of unknown approval (the registry could not be asked)"
        who = f" by {self.decided_by}" if self.decided_by else ""
        why = f": {self.comment}" if self.comment else ""
        return f"{self.approval.value}{' (' + who.strip() + why + ')' if who or why else ''}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's answer for one act: allowed or not, and why not (the warning under `warn`)."""

    allowed: bool
    gate: Gate
    approval: ApprovalState | None
    reason: str | None = None  # set when the approval does not allow the act

    @property
    def warning(self) -> str | None:
        """Return the reason when the act goes ahead only because the gate is `warn`."""
        return self.reason if self.allowed and self.reason else None

    def problem_fields(self) -> dict[str, Any]:
        """Return the extension members of the 409/403 problem this verdict refuses with."""
        return {
            "approval": self.approval.value if self.approval else None,
            "gate": self.gate.value,
        }


def _verdict(standing: Standing, reason: str | None) -> Verdict:
    if reason is None or standing.gate is Gate.off:
        return Verdict(True, standing.gate, standing.approval)
    allowed = standing.gate is Gate.warn
    return Verdict(allowed, standing.gate, standing.approval, reason)


def judge_deploy(
    standing: Standing, *, model: str, device: str, labels: Mapping[str, str]
) -> Verdict:
    """Return whether `model` may be deployed to (or started on) a device with these labels."""
    approval = standing.approval
    if approval is None or approval not in RUNNABLE:
        reason = f"Model {model} is {standing.describe()}; only approved models may be deployed."
        return _verdict(standing, reason)
    return _verdict(standing, _device_refused(standing, model=model, device=device, labels=labels))


def judge_running(
    standing: Standing, *, model: str, device: str, labels: Mapping[str, str]
) -> Verdict:
    """Return whether a deployment already running may go on (stopped once blocked or retired).

    A model sent back to `draft` or `in_review` (an edit that needs re-approval) keeps running
    where it runs until a reviewer decides; new deployments of it are judged by `judge_deploy`.
    """
    if standing.approval in STOPPING:
        return _verdict(standing, f"Model {model} is {standing.describe()}; it may not run.")
    return _verdict(standing, _device_refused(standing, model=model, device=device, labels=labels))


def _device_refused(
    standing: Standing, *, model: str, device: str, labels: Mapping[str, str]
) -> str | None:
    if standing.approval is not ApprovalState.restricted:
        return None
    missing = (standing.conditions or Conditions()).labels_missing(labels)
    if not missing:
        return None
    return (
        f"Model {model} is restricted to devices with {'; '.join(missing)}; "
        f"device {device} does not qualify."
    )


def judge_bind(standing: Standing, *, model: str, group: str) -> Verdict:
    """Return whether a gateway group named `group` may be bound to `model`."""
    approval = standing.approval
    reason = None
    if approval is None or approval not in RUNNABLE:
        reason = f"Model {model} is {standing.describe()}; only approved models may be served."
    else:
        reason = _group_refused(standing, model=model, group=group)
    return _verdict(standing, reason)


def judge_serve(standing: Standing, *, model: str, group: str) -> Verdict:
    """Return whether a bound group may keep serving `model` (refused once blocked or retired)."""
    approval = standing.approval
    reason = None
    if approval in STOPPING:
        reason = f"Model {model} is {standing.describe()}; it may not be served."
    elif approval is ApprovalState.restricted:
        reason = _group_refused(standing, model=model, group=group)
    return _verdict(standing, reason)


def _group_refused(standing: Standing, *, model: str, group: str) -> str | None:
    if standing.approval is not ApprovalState.restricted:
        return None
    allowed = (standing.conditions or Conditions()).gateway_groups
    if group in allowed:
        return None
    return (
        f"Model {model} is restricted to the gateway groups {', '.join(allowed) or '(none)'}; "
        f"group {group} is not one of them."
    )


# --- The projection: tables each enforcing service migrates (see `governance_ddl`). ---------


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


class ModelApprovalEvent(BaseModel):
    """The fields of a `registry.model.*` event (or registry read) the projection keeps."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    workspace: str
    name: str
    approval: ApprovalState = ApprovalState.draft
    approval_conditions: dict[str, Any] | None = None
    approval_comment: str | None = None
    updated_by: str | None = None


class PolicyEvent(BaseModel):
    """The data of a `registry.policy.updated` event (and of `GET /v1/policy`)."""

    model_config = ConfigDict(extra="ignore")

    workspace: str
    gate: Gate
    updated_by: str | None = None


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
        approvals = self.approvals
        stmt = insert(approvals).values(
            model_id=model.id,
            workspace=model.workspace,
            name=model.name,
            approval=model.approval.value,
            conditions=model.approval_conditions,
            decided_by=model.updated_by,
            comment=model.approval_comment,
            source_time=source_time,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[approvals.model_id],
            set_={
                "workspace": stmt.excluded.workspace,
                "name": stmt.excluded.name,
                "approval": stmt.excluded.approval,
                "conditions": stmt.excluded.conditions,
                "decided_by": stmt.excluded.decided_by,
                "comment": stmt.excluded.comment,
                "source_time": stmt.excluded.source_time,
                "updated_at": func.now(),
            },
            # Events arrive out of order across relays; only a newer one changes the row.
            where=approvals.source_time <= stmt.excluded.source_time,
        ).returning(approvals.model_id)
        return (await session.scalar(upsert)) is not None

    async def record_policy(
        self, session: AsyncSession, policy: PolicyEvent, *, source_time: datetime
    ) -> bool:
        """Upsert a workspace's gate unless a newer one is already applied; return if it was."""
        policies = self.policies
        stmt = insert(policies).values(
            workspace=policy.workspace,
            gate=policy.gate.value,
            updated_by=policy.updated_by,
            source_time=source_time,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[policies.workspace],
            set_={
                "gate": stmt.excluded.gate,
                "updated_by": stmt.excluded.updated_by,
                "source_time": stmt.excluded.source_time,
            },
            where=policies.source_time <= stmt.excluded.source_time,
        ).returning(policies.workspace)
        return (await session.scalar(upsert)) is not None

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


async def fetch_registry_model(
    http: httpx.AsyncClient, *, model_id: uuid.UUID, authorization: str | None
) -> dict[str, Any] | None:
    """Return the model as the registry shows it to the caller, or None when it has none.

    The caller's own token is passed on, so the answer proves the model is in their workspace.
    Raises 503 when the registry cannot answer.
    """
    headers = {"Authorization": authorization} if authorization else {}
    try:
        response = await http.get(f"/v1/models/{model_id}", headers=headers)
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(
            f"The registry is unreachable ({type(exc).__name__})."
        ) from exc
    if response.status_code in (403, 404):
        return None
    if response.status_code != 200:
        raise ServiceUnavailableError(f"The registry answered {response.status_code}.")
    try:
        body = response.json()
    except ValueError as exc:
        raise ServiceUnavailableError("The registry sent an unreadable model.") from exc
    if not isinstance(body, dict):
        raise ServiceUnavailableError("The registry sent an unreadable model.")
    return body
