"""The policy gate's pure judgements: gates, approval states, standings, verdicts, event shapes.

No I/O here: the deployer and the gateway judge with these functions on what their projection
(`governance.projection`) or the registry (`governance.confirmation`) told them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "GOVERNANCE_ROUTING_KEYS",
    "MODEL_DELETED",
    "MODEL_EVENT_PREFIX",
    "POLICY_PROBLEM",
    "POLICY_UPDATED",
    "RUNNABLE",
    "STOPPING",
    "ApprovalState",
    "Conditions",
    "Gate",
    "ModelApprovalEvent",
    "PolicyEvent",
    "Standing",
    "Verdict",
    "judge_bind",
    "judge_deploy",
    "judge_running",
    "judge_serve",
]

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
