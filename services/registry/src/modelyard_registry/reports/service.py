"""Inventory export and import (JSON and CSV, one record shape), and the AI Act register."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.errors import (
    FieldError,
    PayloadTooLargeError,
    ProblemError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)
from modelyard_common.http import make_etag
from modelyard_common.inputs import JSONInputError, loads_guarded, reject_nul
from modelyard_registry.ai_models import service as models_service
from modelyard_registry.ai_models.schemas import AIModelCreate
from modelyard_registry.ai_systems import service as systems_service
from modelyard_registry.ai_systems.schemas import AISystemCreate, AISystemUpdate, SystemStatus
from modelyard_registry.evidence import service as evidence_service
from modelyard_registry.evidence.schemas import EvidenceCreate
from modelyard_registry.links import service as links_service
from modelyard_registry.links.schemas import LinkCreate
from modelyard_registry.obligations import repository as obligations_repository
from modelyard_registry.obligations import service as obligations_service
from modelyard_registry.obligations.schemas import ObligationUpdate
from modelyard_registry.reports import repository
from modelyard_registry.reports.pdf import render_register
from modelyard_registry.reports.schemas import (
    CSV_COLUMNS,
    INVENTORY_FORMAT,
    JSON_CELLS,
    KINDS,
    ImportReport,
    Inventory,
    RowProblem,
)

MODEL_FIELDS = tuple(AIModelCreate.model_fields)
SYSTEM_FIELDS = tuple(AISystemCreate.model_fields)
PLURAL = {"model": "models", "system": "systems", "link": "links"}
PLURAL |= {"obligation": "obligations", "evidence": "evidence"}
MAX_IMPORT_BYTES = 5 * 1024 * 1024


async def export_inventory(session: AsyncSession, *, principal: Principal) -> Inventory:
    """Return the workspace's whole inventory as import-ready records."""
    ws = principal.workspace
    models = await repository.models(session, workspace=ws)
    systems = await repository.systems(session, workspace=ws)
    model_names = {m.id: m.name for m in models}
    system_names = {s.id: s.name for s in systems}
    inventory = Inventory(workspace=ws, exported_at=utcnow())
    for model in models:
        read = models_service.models.to_read(model).model_dump(mode="json")
        inventory.models.append({f: read[f] for f in (*MODEL_FIELDS, "approval")})
    for system in systems:
        read = systems_service.systems.to_read(system).model_dump(mode="json")
        inventory.systems.append({f: read[f] for f in SYSTEM_FIELDS})
    for link in await repository.links(session, workspace=ws):
        inventory.links.append(
            {
                "system": system_names[link.system_id],
                "model": model_names[link.model_id],
                "description_of_use": link.description_of_use,
            }
        )
    for row in await repository.obligations(session, workspace=ws):
        inventory.obligations.append(
            {
                "system": system_names[row.system_id],
                "code": row.code,
                "status": row.status,
                "owner": row.owner,
                "note": row.note,
            }
        )
    # By names, not ids: two workspaces holding the same inventory export the same document.
    inventory.links.sort(key=lambda r: (r["system"], r["model"]))
    inventory.obligations.sort(key=lambda r: (r["system"], r["code"]))
    for item in await repository.evidence(session, workspace=ws):
        inventory.evidence.append(
            {
                "type": item.type,
                "title": item.title,
                "url": item.url,
                "owner": item.owner,
                "expires_on": item.expires_on.isoformat() if item.expires_on else None,
                "system": system_names.get(item.system_id) if item.system_id else None,
                "model": model_names.get(item.model_id) if item.model_id else None,
                "file_name": item.file_name,
                "file_sha256": item.file_sha256,
            }
        )
    return inventory


def inventory_to_csv(inventory: Inventory) -> str:
    """Return the inventory as one CSV table, a `kind` column telling the records apart."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="raise")
    writer.writeheader()
    for kind in KINDS:
        for record in getattr(inventory, PLURAL[kind]):
            cells = {"kind": kind}
            for key, value in record.items():
                if value is None:
                    continue
                cells[key] = json.dumps(value) if key in JSON_CELLS else str(value)
            writer.writerow(cells)
    return out.getvalue()


def inventory_from_csv(text: str) -> tuple[Inventory, dict[tuple[str, int], int]]:
    """Return the records of a CSV export and each record's line number, by (kind, index)."""
    reader = csv.DictReader(io.StringIO(text))
    unknown = set(reader.fieldnames or ()) - set(CSV_COLUMNS)
    if not reader.fieldnames or "kind" not in reader.fieldnames or unknown:
        raise UnprocessableError(
            "The CSV needs a header with a `kind` column and only known columns"
            + (f" (unknown: {', '.join(sorted(unknown))})." if unknown else "."),
        )
    inventory, lines, bad = Inventory(), {}, []
    for row in _rows(reader):
        kind = row.get("kind") or ""
        if kind not in KINDS:
            bad.append(
                RowProblem(
                    row=reader.line_num, kind=kind, field="kind", message="unknown record kind"
                )
            )
            continue
        record: dict[str, Any] = {}
        for key, value in row.items():
            if key == "kind" or key is None or value in (None, ""):
                continue
            if key in JSON_CELLS:
                try:
                    record[key] = loads_guarded(value)
                except JSONInputError as exc:
                    where = ".".join(str(p) for p in (key, *exc.path))
                    bad.append(
                        RowProblem(row=reader.line_num, kind=kind, field=where, message=str(exc))
                    )
                except ValueError:
                    record[key] = value  # validation names the field below
            else:
                record[key] = value
        target = getattr(inventory, PLURAL[kind])
        lines[(kind, len(target))] = reader.line_num
        target.append(record)
    if bad:
        raise _invalid(bad)
    return inventory, lines


async def read_import(
    chunks: AsyncIterator[bytes], content_type: str
) -> tuple[Inventory, dict[tuple[str, int], int]]:
    """Return the inventory an import body holds and each CSV record's line (none for JSON).

    413 past `MAX_IMPORT_BYTES`, 415 unless `content_type` is JSON or CSV, 422 unless it is
    UTF-8 text without NUL that parses as an inventory.
    """
    raw = bytearray()
    async for chunk in chunks:
        raw += chunk
        if len(raw) > MAX_IMPORT_BYTES:
            raise PayloadTooLargeError(f"An import may be at most {MAX_IMPORT_BYTES} bytes.")
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnprocessableError("The import must be UTF-8 text.") from exc
    reject_nul(text, ["body"])  # the body is read here, past the shared JSON check
    if kind == "text/csv":
        return inventory_from_csv(text)
    if kind != "application/json":
        raise UnsupportedMediaTypeError("Send application/json or text/csv.")
    try:
        document = loads_guarded(text)  # depth and NaN checked before parsing
        reject_nul(document, ["body"])
        return Inventory.model_validate(document), {}
    except JSONInputError as exc:
        raise exc.to_error(["body"]) from exc
    except (ValueError, ValidationError) as exc:
        raise UnprocessableError(
            "The body is not an inventory document.",
            errors=[FieldError(loc=["body"], field="body", message=str(exc)[:500], type="json")],
        ) from exc


def _rows(reader: csv.DictReader[str]) -> Iterator[dict[str, Any]]:
    """Yield the reader's rows; a row the csv module refuses is a 422 naming its line.

    The module refuses a field past `csv.field_size_limit()` (128 KiB, left at its default:
    no inventory field is that long) and malformed quoting.
    """
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The DictReader counts only rows it returned: its reader knows the failing line.
            line = reader.reader.line_num
            raise _invalid([RowProblem(row=line, kind="", field=None, message=f"{exc}")]) from exc
        yield row


def _invalid(problems: list[RowProblem]) -> UnprocessableError:
    return UnprocessableError(
        f"{len(problems)} record(s) are invalid; nothing was imported.",
        rows=[p.model_dump() for p in problems],
    )


class _Importer:
    """Applies an inventory through the services, so every rule and audit entry holds."""

    def __init__(
        self, session: AsyncSession, principal: Principal, lines: dict[tuple[str, int], int]
    ) -> None:
        self.session, self.principal, self.lines = session, principal, lines
        self.errors: list[RowProblem] = []
        self.created = dict.fromkeys(PLURAL.values(), 0)
        self.models: dict[str, uuid.UUID] = {}
        self.systems: dict[str, uuid.UUID] = {}
        self.final_status: dict[str, str] = {}

    def _error(self, kind: str, index: int, field: str | None, message: str) -> None:
        row = self.lines.get((kind, index), index + 1)
        self.errors.append(RowProblem(row=row, kind=kind, field=field, message=message))

    def _parse(self, schema: type[BaseModel], kind: str, index: int, record: dict[str, Any]) -> Any:
        try:
            return schema.model_validate(record)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or None
                self._error(kind, index, field, err["msg"])
            return None

    async def _apply(self, kind: str, index: int, action: Any) -> Any:
        try:
            async with self.session.begin_nested():
                result = await action
        except ProblemError as exc:
            self._error(kind, index, None, exc.detail or exc.title)
            return None
        self.created[PLURAL[kind]] += 1
        return result

    def _ref(
        self, kind: str, index: int, names: dict[str, uuid.UUID], field: str, name: Any
    ) -> Any:
        if name is None:
            return None
        if name not in names:
            self._error(kind, index, field, f"no {field} named {name!r} in this import")
            return False
        return names[name]

    async def run(self, inventory: Inventory) -> None:
        p, s = self.principal, self.session
        for i, record in enumerate(inventory.models):
            body = self._parse(
                AIModelCreate, "model", i, {k: v for k, v in record.items() if k != "approval"}
            )
            if body is not None:
                read = await self._apply(
                    "model", i, models_service.models.create(s, principal=p, body=body)
                )
                if read is not None:
                    self.models[read.name] = read.id
        for i, record in enumerate(inventory.systems):
            body = self._parse(AISystemCreate, "system", i, record)
            if body is not None:
                # Created as draft: obligations are recorded before the system may be in use.
                target = body.status
                body = body.model_copy(update={"status": SystemStatus.draft})
                read = await self._apply(
                    "system", i, systems_service.systems.create(s, principal=p, body=body)
                )
                if read is not None:
                    self.systems[read.name] = read.id
                    self.final_status[read.name] = target
        for i, record in enumerate(inventory.links):
            system = self._ref("link", i, self.systems, "system", record.get("system"))
            model = self._ref("link", i, self.models, "model", record.get("model"))
            body = self._parse(
                LinkCreate,
                "link",
                i,
                {"model_id": model, "description_of_use": record.get("description_of_use")},
            )
            if system and model and body is not None:
                await self._apply(
                    "link", i, links_service.attach(s, principal=p, system_id=system, body=body)
                )
        for i, record in enumerate(inventory.obligations):
            system = self._ref("obligation", i, self.systems, "system", record.get("system"))
            fields = {k: v for k, v in record.items() if k not in ("system", "code")}
            body = self._parse(ObligationUpdate, "obligation", i, fields)
            if system and body is not None:
                code = str(record.get("code"))
                stored = await obligations_repository.get(s, system_id=system, code=code)
                await self._apply(
                    "obligation",
                    i,
                    obligations_service.update_obligation(
                        s,
                        principal=p,
                        system_id=system,
                        code=code,
                        body=body,
                        if_match=make_etag(stored.revision if stored else 0),
                    ),
                )
        for i, record in enumerate(inventory.evidence):
            system = self._ref("evidence", i, self.systems, "system", record.get("system"))
            model = self._ref("evidence", i, self.models, "model", record.get("model"))
            fields = {
                k: v
                for k, v in record.items()
                if k not in ("system", "model", "file_name", "file_sha256")
            }
            body = self._parse(
                EvidenceCreate, "evidence", i, {**fields, "system_id": system, "model_id": model}
            )
            if system is not False and model is not False and body is not None:
                await self._apply(
                    "evidence", i, evidence_service.create_evidence(s, principal=p, body=body)
                )
        for i, record in enumerate(inventory.systems):
            name = record.get("name")
            target = self.final_status.get(str(name))
            if target and target != "draft":
                await self._set_status(i, str(name), target)

    async def _set_status(self, index: int, name: str, status: str) -> None:
        try:
            async with self.session.begin_nested():
                current = await systems_service.systems.get(
                    self.session, principal=self.principal, item_id=self.systems[name]
                )
                await systems_service.systems.update(
                    self.session,
                    principal=self.principal,
                    item_id=current.id,
                    body=AISystemUpdate.model_validate({"status": status}),
                    if_match=make_etag(current.revision),
                )
        except ProblemError as exc:
            self._error("system", index, "status", exc.detail or exc.title)


async def import_inventory(
    session: AsyncSession,
    *,
    principal: Principal,
    inventory: Inventory,
    lines: dict[tuple[str, int], int] | None = None,
    dry_run: bool,
) -> ImportReport:
    """Return what the import did; on any invalid record (or a dry run) nothing is kept."""
    if inventory.format != INVENTORY_FORMAT:
        raise UnprocessableError(f"Unknown inventory format; expected {INVENTORY_FORMAT!r}.")
    importer = _Importer(session, principal, lines or {})
    outer = await session.begin_nested()
    await importer.run(inventory)
    if importer.errors and not dry_run:
        await outer.rollback()
        raise _invalid(importer.errors)
    applied = not dry_run
    if applied:
        await outer.commit()
    else:
        await outer.rollback()
    return ImportReport(
        dry_run=dry_run, applied=applied, created=importer.created, errors=importer.errors
    )


async def system_register_pdf(
    session: AsyncSession, *, principal: Principal, system_id: uuid.UUID
) -> tuple[str, bytes]:
    """Return a file name and the PDF of the system's AI Act register."""
    system = await systems_service.systems.get(session, principal=principal, item_id=system_id)
    links = await links_service.list_models_of_system(
        session, principal=principal, system_id=system_id
    )
    approvals = {
        m.id: m
        for m in await repository.models(session, workspace=principal.workspace)
        if m.id in {link.model_id for link in links}
    }
    obligations = await obligations_service.list_obligations(
        session, principal=principal, system_id=system_id
    )
    items = await repository.evidence(session, workspace=principal.workspace, system_id=system_id)
    # ReportLab blocks for as long as it lays the pages out: off the event loop, in a thread.
    pdf = await asyncio.to_thread(
        render_register,
        system=systems_service.systems.to_read(system).model_dump(mode="json"),
        models=[
            (
                link.model_name,
                approvals[link.model_id].provider,
                approvals[link.model_id].learning_type,
                approvals[link.model_id].approval,
                link.description_of_use,
            )
            for link in links
        ],
        obligations=[
            (o.article, o.title, "yes" if o.required else "no", o.status.value, o.owner)
            for o in obligations
        ],
        evidence=[
            (
                e.type,
                e.title,
                e.owner,
                e.expires_on.isoformat() if e.expires_on else "",
                e.url
                or (
                    f"file {e.file_name} (sha256 {e.file_sha256[:12]}...)" if e.file_sha256 else ""
                ),
            )
            for e in items
        ],
        generated_at=utcnow(),
        generated_by=principal.sub,
    )
    return f"ai-act-register-{system.name}.pdf", pdf
