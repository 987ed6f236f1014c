"""`projection_models` (governance.tables) maps a projection on its own base and schema."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from modelyard_common.db import schema_metadata
from modelyard_common.governance import governance_ddl
from modelyard_common.governance.tables import projection_models

SCHEMA = "projection_test"


class _Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


ModelApproval, WorkspacePolicy = projection_models(_Base)


def test_the_classes_are_named_and_mapped_as_if_declared_on_the_base() -> None:
    tables = {ModelApproval: "model_approvals", WorkspacePolicy: "workspace_policies"}
    for model, table in tables.items():
        assert model.__module__ == __name__
        assert model.__table__.name == table  # type: ignore[attr-defined]
        assert model.__table__.schema == SCHEMA  # type: ignore[attr-defined]
        assert f"{SCHEMA}.{table}" in " ".join(governance_ddl(SCHEMA))
    assert [m.__name__ for m in tables] == ["ModelApproval", "WorkspacePolicy"]
    assert ModelApproval.__table__.primary_key.columns.keys() == ["model_id"]  # type: ignore[attr-defined]
