"""The projection's two tables as one service's classes, the way `infrastructure_models` does:

    # db.py
    ModelApproval, WorkspacePolicy = projection_models(Base)

Each enforcing service maps the same mixins on its own schema; `governance_ddl` creates them.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar, cast

from sqlalchemy.orm import DeclarativeBase

from modelyard_common.governance.projection import ModelApprovalMixin, WorkspacePolicyMixin

__all__ = ["ProjectionModels", "projection_models"]

Mixin = TypeVar("Mixin")


class ProjectionModels(NamedTuple):
    """One service's projection classes, in the order `projection_models` unpacks."""

    ModelApproval: type[ModelApprovalMixin]
    WorkspacePolicy: type[WorkspacePolicyMixin]


def projection_models(base: type[DeclarativeBase]) -> ProjectionModels:
    """Return the `model_approvals` and `workspace_policies` classes mapped on `base`'s schema.

    The classes are named and placed as if declared in `base`'s module (its `db.py`).
    """

    def declare(mixin: type[Mixin], name: str, table: str, doc: str) -> type[Mixin]:
        namespace = {"__tablename__": table, "__module__": base.__module__, "__doc__": doc}
        return cast(type[Mixin], type(name, (mixin, base), namespace))

    return ProjectionModels(
        declare(
            ModelApprovalMixin,
            "ModelApproval",
            "model_approvals",
            "The projection of registry approvals the policy gate reads (`registry.model.*`).",
        ),
        declare(
            WorkspacePolicyMixin,
            "WorkspacePolicy",
            "workspace_policies",
            "The projection of workspace gates (`registry.policy.updated`).",
        ),
    )
