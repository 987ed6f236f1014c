"""The two classes of a service's governance projection, mapped on its own declarative base.

    # db.py
    ModelApproval, WorkspacePolicy = projection_models(Base)

The columns are the mixins of `projection` (`ModelApprovalMixin`, `WorkspacePolicyMixin`); the
tables are those `governance_ddl` creates in the service's schema.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar, cast

from sqlalchemy.orm import DeclarativeBase

from modelyard_common.governance.projection import ModelApprovalMixin, WorkspacePolicyMixin

__all__ = ["ProjectionModels", "projection_models"]

M = TypeVar("M")


class ProjectionModels(NamedTuple):
    """One service's projection classes, in the order `projection_models` unpacks."""

    ModelApproval: type[ModelApprovalMixin]
    WorkspacePolicy: type[WorkspacePolicyMixin]


def projection_models(base: type[DeclarativeBase]) -> ProjectionModels:
    """Return the `model_approvals` and `workspace_policies` classes mapped on `base`'s schema.

    The classes are named and placed as if declared in `base`'s module (its `db.py`).
    """

    def mapped(mixin: type[M], name: str, table: str, doc: str) -> type[M]:
        namespace = {"__tablename__": table, "__module__": base.__module__, "__doc__": doc}
        return cast(type[M], type(name, (mixin, base), namespace))

    return ProjectionModels(
        mapped(
            ModelApprovalMixin,
            "ModelApproval",
            "model_approvals",
            "The projection of registry approvals the policy gate reads (`registry.model.*`).",
        ),
        mapped(
            WorkspacePolicyMixin,
            "WorkspacePolicy",
            "workspace_policies",
            "The projection of workspace gates (`registry.policy.updated`).",
        ),
    )
