"""AI Act record on systems: derived obligations, the in_use gate, evidence with expiry."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx

from modelyard_testkit.testing import assert_problem, create_ok

Headers = dict[str, str]


def _codes(items: list[dict[str, Any]]) -> set[str]:
    return {i["code"] for i in items}


async def test_obligations_follow_risk_level_and_role(
    client: httpx.AsyncClient, editor: Headers, system_body: dict[str, Any]
) -> None:
    system = await create_ok(client, "/v1/systems", system_body, editor)  # high, deployer
    url = f"/v1/systems/{system['id']}/obligations"
    deployer = (await client.get(url, headers=editor)).json()
    assert {"fria", "human_oversight_assigned", "monitoring_and_logs"} <= _codes(deployer)
    assert "conformity_assessment" not in _codes(deployer)  # a provider's duty
    fria = next(i for i in deployer if i["code"] == "fria")
    assert (fria["article"], fria["required"], fria["status"]) == ("Art. 27", True, "open")

    etag = system["etag"]
    both = await client.patch(
        f"/v1/systems/{system['id']}",
        json={"ai_act_role": "both"},
        headers={**editor, "If-Match": etag},
    )
    assert both.status_code == 200, both.text
    codes = _codes((await client.get(url, headers=editor)).json())
    assert {"fria", "conformity_assessment", "risk_management"} <= codes

    minimal = await client.patch(
        f"/v1/systems/{system['id']}",
        json={"risk_level": "minimal"},
        headers={**editor, "If-Match": both.headers["etag"]},
    )
    items = (await client.get(url, headers=editor)).json()
    assert minimal.status_code == 200
    assert _codes(items) == {"ai_literacy", "voluntary_code_of_conduct"}
    assert not any(i["required"] for i in items)


async def test_high_risk_system_cannot_be_in_use_until_required_items_are_done(
    client: httpx.AsyncClient, editor: Headers, system_body: dict[str, Any]
) -> None:
    refused = await client.post(
        "/v1/systems", json={**system_body, "status": "in_use"}, headers=editor
    )
    body = assert_problem(refused, 409)
    assert "fria" in {o["code"] for o in body["open_obligations"]}

    system = await create_ok(client, "/v1/systems", system_body, editor)
    sid, etag = system["id"], system["etag"]
    blocked = await client.patch(
        f"/v1/systems/{sid}", json={"status": "in_use"}, headers={**editor, "If-Match": etag}
    )
    assert_problem(blocked, 409)
    assert (await client.get(f"/v1/systems/{sid}", headers=editor)).json()["status"] == "draft"

    items = (await client.get(f"/v1/systems/{sid}/obligations", headers=editor)).json()
    required = [i for i in items if i["required"]]
    # A required item cannot be waved away as not applicable.
    waved = await client.patch(
        f"/v1/systems/{sid}/obligations/fria",
        json={"status": "not_applicable"},
        headers={**editor, "If-Match": next(i["etag"] for i in items if i["code"] == "fria")},
    )
    assert_problem(waved, 409)
    for item in required[:-1]:
        done = await client.patch(
            f"/v1/systems/{sid}/obligations/{item['code']}",
            json={"status": "done", "owner": "dpo@example.org"},
            headers={**editor, "If-Match": item["etag"]},
        )
        assert done.status_code == 200, done.text
        assert done.json()["updated_by"] == "alice"
    last_open = assert_problem(
        await client.patch(
            f"/v1/systems/{sid}", json={"status": "in_use"}, headers={**editor, "If-Match": etag}
        ),
        409,
    )
    assert [o["code"] for o in last_open["open_obligations"]] == [required[-1]["code"]]

    await client.patch(
        f"/v1/systems/{sid}/obligations/{required[-1]['code']}",
        json={"status": "done"},
        headers={**editor, "If-Match": required[-1]["etag"]},
    )
    in_use = await client.patch(
        f"/v1/systems/{sid}", json={"status": "in_use"}, headers={**editor, "If-Match": etag}
    )
    assert in_use.status_code == 200, in_use.text
    history = (await client.get(f"/v1/systems/{sid}/history", headers=editor)).json()["items"]
    assert "obligation_updated" in {h["action"] for h in history}
    fria_change = next(h for h in history if "obligations.fria.status" in h["changes"])
    assert fria_change["changes"]["obligations.fria.status"] == {"old": "open", "new": "done"}


async def test_unacceptable_risk_is_never_in_use(
    client: httpx.AsyncClient, editor: Headers, system_body: dict[str, Any]
) -> None:
    body = {**system_body, "risk_level": "unacceptable", "status": "in_use"}
    problem = assert_problem(await client.post("/v1/systems", json=body, headers=editor), 409)
    assert "Art. 5" in problem["detail"]


async def test_obligation_update_checks(
    client: httpx.AsyncClient,
    editor: Headers,
    as_role: Callable[..., Headers],
    system_body: dict[str, Any],
) -> None:
    system = await create_ok(client, "/v1/systems", system_body, editor)
    url = f"/v1/systems/{system['id']}/obligations"
    assert_problem(await client.patch(f"{url}/fria", json={"status": "done"}, headers=editor), 428)
    stale = {**editor, "If-Match": '"7"'}
    assert_problem(await client.patch(f"{url}/fria", json={"status": "done"}, headers=stale), 412)
    fresh = {**editor, "If-Match": '"0"'}
    assert_problem(await client.patch(f"{url}/conformity_assessment", json={}, headers=fresh), 404)
    bogus = await client.patch(
        f"{url}/fria",
        json={"evidence_id": "00000000-0000-0000-0000-000000000000"},
        headers=fresh,
    )
    assert_problem(bogus, 422, "evidence_id")
    viewer = as_role("viewer", sub="vic")
    assert_problem(
        await client.patch(
            f"{url}/fria", json={"status": "done"}, headers={**viewer, "If-Match": '"0"'}
        ),
        403,
    )
    other = as_role("admin", ws="elsewhere")
    assert_problem(await client.get(url, headers=other), 404)


async def test_evidence_links_files_and_expiry(
    client: httpx.AsyncClient,
    editor: Headers,
    as_role: Callable[..., Headers],
    system_body: dict[str, Any],
) -> None:
    system = await create_ok(client, "/v1/systems", system_body, editor)
    soon = (date.today() + timedelta(days=10)).isoformat()
    later = (date.today() + timedelta(days=400)).isoformat()
    fria = await create_ok(
        client,
        "/v1/evidence",
        {
            "type": "fria",
            "title": "FRIA 2026",
            "owner": "dpo",
            "expires_on": soon,
            "system_id": system["id"],
        },
        editor,
    )
    card = await create_ok(
        client,
        "/v1/evidence",
        {
            "type": "model_card",
            "title": "Card",
            "url": "https://dms.example.org/card",
            "expires_on": later,
        },
        editor,
    )
    assert fria["has_file"] is False
    assert card["url"] == "https://dms.example.org/card"

    content = b"%PDF-1.4 fria body\n" * 100
    put = await client.put(
        f"/v1/evidence/{fria['id']}/file",
        params={"filename": "fria.pdf"},
        content=content,
        headers={**editor, "content-type": "application/pdf"},
    )
    assert put.status_code == 200, put.text
    assert put.json()["file_sha256"] == hashlib.sha256(content).hexdigest()
    got = await client.get(f"/v1/evidence/{fria['id']}/file", headers=editor)
    assert got.content == content
    assert got.headers["content-type"] == "application/pdf"
    assert 'filename="fria.pdf"' in got.headers["content-disposition"]

    expiring = await client.get("/v1/evidence", params={"expiring_within_days": 30}, headers=editor)
    assert [e["id"] for e in expiring.json()["items"]] == [fria["id"]]
    by_system = await client.get("/v1/evidence", params={"system_id": system["id"]}, headers=editor)
    assert [e["id"] for e in by_system.json()["items"]] == [fria["id"]]

    # The evidence proves an obligation.
    linked = await client.patch(
        f"/v1/systems/{system['id']}/obligations/fria",
        json={"status": "done", "evidence_id": fria["id"]},
        headers={**editor, "If-Match": '"0"'},
    )
    assert linked.json()["evidence_id"] == fria["id"]

    # Another workspace sees none of it, and cannot attach to it.
    other = as_role("admin", ws="elsewhere")
    assert_problem(await client.get(f"/v1/evidence/{fria['id']}", headers=other), 404)
    assert (await client.get("/v1/evidence", headers=other)).json()["items"] == []
    foreign = await client.post(
        "/v1/evidence",
        json={"type": "dpia", "title": "x", "system_id": system["id"]},
        headers=other,
    )
    assert_problem(foreign, 422, "system_id")


async def test_evidence_file_size_limit_keeps_nothing(
    client: httpx.AsyncClient, editor: Headers, app: Any
) -> None:
    item = await create_ok(client, "/v1/evidence", {"type": "bias_report", "title": "b"}, editor)
    limit = app.state.settings.evidence_max_bytes
    too_big = await client.put(
        f"/v1/evidence/{item['id']}/file",
        params={"filename": "big.bin"},
        content=b"\0" * (limit + 1),
        headers=editor,
    )
    assert_problem(too_big, 413)
    assert (await client.get(f"/v1/evidence/{item['id']}", headers=editor)).json()[
        "has_file"
    ] is False
    assert_problem(
        await client.put(
            f"/v1/evidence/{item['id']}/file",
            params={"filename": "../etc/passwd"},
            content=b"x",
            headers=editor,
        ),
        422,
    )
