"""Reports: inventory export and import (round trip, dry run), and the AI Act register PDF."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard_testkit.testing import assert_problem, create_ok

Headers = dict[str, str]
RoleHeaders = Callable[..., Headers]


async def _build_inventory(
    client: httpx.AsyncClient,
    as_role: RoleHeaders,
    model_body: dict[str, Any],
    system_body: dict[str, Any],
) -> dict[str, Any]:
    editor, approver = as_role("editor"), as_role("approver", sub="bob")
    fraud = await create_ok(client, "/v1/models", model_body, editor)
    chat = await create_ok(
        client,
        "/v1/models",
        {"name": "<b>chat</b> & co", "learning_type": "semi_supervised", "tags": ["nlp"]},
        editor,
    )
    await client.post(
        f"/v1/models/{fraud['id']}/approval/request", json={"comment": "go"}, headers=editor
    )
    await client.post(
        f"/v1/models/{fraud['id']}/approval/decision",
        json={"decision": "approved", "comment": "ok"},
        headers=approver,
    )
    risky = await create_ok(
        client,
        "/v1/systems",
        {**system_body, "risk_justification": "Annex III 5(b)"},
        editor,
    )
    helpdesk = await create_ok(
        client,
        "/v1/systems",
        {"name": "helpdesk", "risk_level": "limited", "status": "in_use", "ai_act_role": "both"},
        editor,
    )
    for system, model, use in (
        (risky, fraud, "scores each payment"),
        (helpdesk, chat, "answers first-line questions"),
        (helpdesk, fraud, "flags refund fraud"),
    ):
        await create_ok(
            client,
            f"/v1/systems/{system['id']}/models",
            {"model_id": model["id"], "description_of_use": use},
            editor,
        )
    fria = await create_ok(
        client,
        "/v1/evidence",
        {
            "type": "fria",
            "title": "FRIA",
            "url": "https://dms.example.org/fria",
            "expires_on": "2030-01-31",
            "system_id": risky["id"],
            "owner": "dpo",
        },
        editor,
    )
    items = (await client.get(f"/v1/systems/{risky['id']}/obligations", headers=editor)).json()
    for item in items:
        if item["required"]:
            extra = {"evidence_id": fria["id"]} if item["code"] == "fria" else {}
            await client.patch(
                f"/v1/systems/{risky['id']}/obligations/{item['code']}",
                json={"status": "done", "owner": "dpo", **extra},
                headers={**editor, "If-Match": item["etag"]},
            )
    system = await client.get(f"/v1/systems/{risky['id']}", headers=editor)
    in_use = await client.patch(
        f"/v1/systems/{risky['id']}",
        json={"status": "in_use"},
        headers={**editor, "If-Match": system.headers["etag"]},
    )
    assert in_use.status_code == 200, in_use.text
    return {"risky": risky, "helpdesk": helpdesk, "fraud": fraud, "chat": chat}


def _comparable(inventory: dict[str, Any]) -> dict[str, Any]:
    """The inventory without what differs by design between two workspaces."""
    models = [{k: v for k, v in m.items() if k != "approval"} for m in inventory["models"]]
    return {
        "models": models,
        **{k: inventory[k] for k in ("systems", "links", "obligations", "evidence")},
    }


@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_export_reimports_into_an_empty_workspace(
    client: httpx.AsyncClient,
    as_role: RoleHeaders,
    model_body: dict[str, Any],
    system_body: dict[str, Any],
    fmt: str,
) -> None:
    await _build_inventory(client, as_role, model_body, system_body)
    source = as_role("editor")
    exported = await client.get("/v1/inventory/export", params={"format": fmt}, headers=source)
    assert exported.status_code == 200, exported.text
    content_type = "text/csv" if fmt == "csv" else "application/json"
    assert exported.headers["content-type"].startswith(content_type)

    target = as_role("editor", ws=f"restore-{fmt}-{id(exported)}")
    upload = {**target, "content-type": content_type}
    dry = await client.post(
        "/v1/inventory/import", params={"dry_run": "true"}, content=exported.content, headers=upload
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["errors"] == []
    assert dry.json()["applied"] is False
    assert dry.json()["created"]["models"] == 2
    empty = (await client.get("/v1/inventory/export", headers=target)).json()
    assert empty["models"] == empty["systems"] == []

    done = await client.post("/v1/inventory/import", content=exported.content, headers=upload)
    assert done.status_code == 200, done.text
    assert done.json()["created"] == {
        "models": 2,
        "systems": 2,
        "links": 3,
        "obligations": done.json()["created"]["obligations"],
        "evidence": 1,
    }
    original = (await client.get("/v1/inventory/export", headers=source)).json()
    restored = (await client.get("/v1/inventory/export", headers=target)).json()
    assert _comparable(restored) == _comparable(original)
    # Approvals are never imported: a restored model must be reviewed again (four-eyes).
    assert {m["approval"] for m in original["models"]} == {"approved", "draft"}
    assert {m["approval"] for m in restored["models"]} == {"draft"}


async def test_import_dry_run_reports_every_invalid_row_and_keeps_nothing(
    client: httpx.AsyncClient, as_role: RoleHeaders
) -> None:
    editor = as_role("editor")
    rows = [
        {"kind": "model", "name": "ok-model", "learning_type": "supervised"},
        {"kind": "model", "name": "bad-type", "learning_type": "deep"},
        {"kind": "model", "name": "ok-model", "learning_type": "supervised"},
        {"kind": "system", "name": "sys", "risk_level": "high", "status": "in_use"},
        {"kind": "link", "system": "sys", "model": "ghost", "description_of_use": "x"},
        {"kind": "model", "name": "tags", "learning_type": "supervised", "tags": "not json"},
    ]
    out = io.StringIO()
    writer = csv.DictWriter(
        out,
        fieldnames=[
            "kind",
            "name",
            "learning_type",
            "risk_level",
            "status",
            "system",
            "model",
            "description_of_use",
            "tags",
        ],
    )
    writer.writeheader()
    writer.writerows(rows)
    body = out.getvalue().encode()
    headers = {**editor, "content-type": "text/csv"}
    dry = await client.post(
        "/v1/inventory/import", params={"dry_run": "true"}, content=body, headers=headers
    )
    assert dry.status_code == 200, dry.text
    errors = dry.json()["errors"]
    by_line = {(e["row"], e["kind"]) for e in errors}
    # Line 1 is the header: record N is on line N + 1.
    assert (3, "model") in by_line  # unknown learning type
    assert (4, "model") in by_line  # duplicate name
    assert (5, "system") in by_line  # high-risk in_use with open obligations
    assert (6, "link") in by_line  # unknown model
    assert (7, "model") in by_line  # tags not a list
    assert (2, "model") not in by_line

    real = await client.post("/v1/inventory/import", content=body, headers=headers)
    problem = assert_problem(real, 422)
    assert len(problem["rows"]) == len(errors)
    listed = (await client.get("/v1/models", headers=editor)).json()["items"]
    assert listed == []  # not even the valid row was kept

    assert_problem(
        await client.post(
            "/v1/inventory/import", content=b"kind,bogus\nmodel,x\n", headers=headers
        ),
        422,
    )
    assert_problem(
        await client.post(
            "/v1/inventory/import",
            content=b"<xml/>",
            headers={**editor, "content-type": "text/xml"},
        ),
        415,
    )
    viewer = as_role("viewer", sub="vic")
    assert_problem(
        await client.post(
            "/v1/inventory/import",
            content=body,
            headers={**headers, "Authorization": viewer["Authorization"]},
        ),
        403,
    )


async def test_register_pdf_renders_and_names_the_models(
    client: httpx.AsyncClient,
    as_role: RoleHeaders,
    model_body: dict[str, Any],
    system_body: dict[str, Any],
    tmp_path: Path,
) -> None:
    built = await _build_inventory(client, as_role, model_body, system_body)
    editor = as_role("editor")
    response = await client.get(
        f"/v1/systems/{built['helpdesk']['id']}/register.pdf", headers=editor
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    pdf = tmp_path / "register.pdf"
    pdf.write_bytes(response.content)
    render = await asyncio.create_subprocess_exec(
        "pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")
    )
    assert await render.wait() == 0
    assert await asyncio.to_thread(lambda: list(tmp_path.glob("page*.png")))
    text = await asyncio.create_subprocess_exec(
        "pdftotext", str(pdf), "-", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await text.communicate()
    words = out.decode()
    assert "helpdesk" in words
    assert "<b>chat</b> & co" in words  # user text is escaped, not read as markup
    assert "fraud-detector" in words
    assert "Art. 50(1)" in words  # a limited-risk provider's transparency duty
    other = as_role("admin", ws="elsewhere")
    assert_problem(
        await client.get(f"/v1/systems/{built['helpdesk']['id']}/register.pdf", headers=other), 404
    )
