"""HTTP routes of reports: inventory export/import and a system's AI Act register PDF."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from modelyard_common.auth import Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.routes import Routes
from modelyard_registry.deps import AUTH_PROBLEMS
from modelyard_registry.downloads import download, download_responses
from modelyard_registry.reports import service
from modelyard_registry.reports.schemas import ExportFormat, ImportReport, Inventory

router = APIRouter(prefix="/v1", tags=["reports"])
reports = Routes(router)


@reports.reading(
    "export_inventory",
    "Export the workspace's inventory (models, systems, links, approvals, obligations, "
    "evidence) as JSON or CSV",
    problems=(*AUTH_PROBLEMS, 422),
    subpath="/inventory/export",
    responses={
        # `model` registers Inventory (and what it nests) under components/schemas, which the
        # import's request body refers to; an inlined model_json_schema() would leave its
        # `#/$defs/...` references dangling in the OpenAPI document.
        200: {"model": Inventory, "content": {"text/csv": {"schema": {"type": "string"}}}},
    },
    response_class=Response,
)
async def export_inventory(
    session: SessionDep, principal: Viewer, format: ExportFormat = ExportFormat.json
) -> Response:
    inventory = await service.export_inventory(session, principal=principal)
    name = f"modelyard-inventory-{principal.workspace}"
    if format == ExportFormat.csv:
        csv = service.inventory_to_csv(inventory)
        return download(csv, media_type="text/csv; charset=utf-8", filename=f"{name}.csv")
    return download(
        inventory.model_dump_json(), media_type="application/json", filename=f"{name}.json"
    )


@reports.acting(
    "import_inventory",
    "Import models, systems, links, obligations and evidence links from an export "
    "(JSON or CSV); `dry_run` reports every invalid record and keeps nothing",
    problems=(*AUTH_PROBLEMS, 413, 415, 422),
    subpath="/inventory/import",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Inventory"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_inventory(
    request: Request,
    session: SessionDep,
    principal: Editor,
    dry_run: Annotated[bool, Query(description="Validate and report; keep nothing.")] = False,
) -> ImportReport:
    inventory, lines = await service.read_import(
        request.stream(), request.headers.get("content-type", "")
    )
    return await service.import_inventory(
        session, principal=principal, inventory=inventory, lines=lines, dry_run=dry_run
    )


@reports.reading(
    "get_system_register_pdf",
    "A system's AI Act register as a PDF: its facts, models, obligations and evidence",
    problems=(*AUTH_PROBLEMS, 404),
    subpath="/systems/{system_id}/register.pdf",
    response_class=Response,
    responses=download_responses("application/pdf"),
)
async def get_system_register_pdf(
    session: SessionDep, principal: Viewer, system_id: uuid.UUID
) -> Response:
    name, pdf = await service.system_register_pdf(session, principal=principal, system_id=system_id)
    return download(pdf, media_type="application/pdf", filename=name)
