"""AI systems and their links to models, seen from both ends."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from modelyard_testkit.testing import assert_problem, create_ok

Headers = dict[str, str]


async def test_system_crud_and_validation(
    client: httpx.AsyncClient, editor: Headers, admin: Headers, system_body: dict[str, Any]
) -> None:
    created = await create_ok(client, "/v1/systems", system_body, editor)
    assert created["risk_level"] == "high"
    assert created["ai_act_role"] == "deployer"
    patched = await client.patch(
        f"/v1/systems/{created['id']}",
        json={"status": "retired"},
        headers={**editor, "If-Match": created["etag"]},
    )
    assert patched.json()["status"] == "retired"
    bad = await client.patch(
        f"/v1/systems/{created['id']}",
        json={"risk_level": "catastrophic", "status": "gone"},
        headers={**editor, "If-Match": patched.json()["etag"]},
    )
    assert_problem(bad, 422, "risk_level", "status")
    assert (await client.get(f"/v1/systems/{created['id']}", headers=editor)).json()[
        "risk_level"
    ] == "high"
    assert (await client.delete(f"/v1/systems/{created['id']}", headers=admin)).status_code == 204


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"risk_level": None}, "risk_level"),
        ({"ai_act_role": "importer"}, "ai_act_role"),
        ({"status": "live"}, "status"),
        ({"name": "   "}, "name"),
    ],
)
async def test_invalid_system_is_rejected(
    client: httpx.AsyncClient,
    editor: Headers,
    system_body: dict[str, Any],
    patch: dict[str, Any],
    field: str,
) -> None:
    assert_problem(
        await client.post("/v1/systems", json={**system_body, **patch}, headers=editor), 422, field
    )
    assert (await client.get("/v1/systems", headers=editor)).json()["items"] == []


async def test_link_lifecycle_seen_from_both_ends(
    client: httpx.AsyncClient,
    editor: Headers,
    model_body: dict[str, Any],
    system_body: dict[str, Any],
) -> None:
    model = await create_ok(client, "/v1/models", model_body, editor)
    system = await create_ok(client, "/v1/systems", system_body, editor)
    links_url = f"/v1/systems/{system['id']}/models"

    missing_use = await client.post(links_url, json={"model_id": model["id"]}, headers=editor)
    assert_problem(missing_use, 422, "description_of_use")
    blank_use = await client.post(
        links_url, json={"model_id": model["id"], "description_of_use": "  "}, headers=editor
    )
    assert_problem(blank_use, 422, "description_of_use")

    link = await create_ok(
        client, links_url, {"model_id": model["id"], "description_of_use": "scores"}, editor
    )
    assert link["model_name"] == "fraud-detector"
    again = await client.post(
        links_url, json={"model_id": model["id"], "description_of_use": "twice"}, headers=editor
    )
    assert_problem(again, 409)

    of_system = (await client.get(links_url, headers=editor)).json()
    assert [(x["model_id"], x["description_of_use"]) for x in of_system] == [
        (model["id"], "scores")
    ]
    of_model = (await client.get(f"/v1/models/{model['id']}/systems", headers=editor)).json()
    assert [(x["system_id"], x["description_of_use"], x["risk_level"]) for x in of_model] == [
        (system["id"], "scores", "high")
    ]

    link_url = f"{links_url}/{model['id']}"
    assert_problem(
        await client.patch(link_url, json={"description_of_use": "x"}, headers=editor), 428
    )
    updated = await client.patch(
        link_url,
        json={"description_of_use": "scores every payment"},
        headers={**editor, "If-Match": link["etag"]},
    )
    assert updated.status_code == 200
    assert updated.json()["description_of_use"] == "scores every payment"

    system_history = (
        await client.get(f"/v1/systems/{system['id']}/history", headers=editor)
    ).json()["items"]
    assert [e["action"] for e in system_history] == ["created", "model_linked", "model_updated"]
    model_history = (await client.get(f"/v1/models/{model['id']}/history", headers=editor)).json()[
        "items"
    ]
    assert [e["action"] for e in model_history] == ["created", "system_linked", "system_updated"]

    assert (await client.delete(link_url, headers=editor)).status_code == 204
    assert (await client.get(links_url, headers=editor)).json() == []
    assert_problem(await client.delete(link_url, headers=editor), 404)


async def test_archived_model_cannot_be_linked(
    client: httpx.AsyncClient,
    editor: Headers,
    model_body: dict[str, Any],
    system_body: dict[str, Any],
) -> None:
    model = await create_ok(client, "/v1/models", model_body, editor)
    system = await create_ok(client, "/v1/systems", system_body, editor)
    await client.post(f"/v1/models/{model['id']}/archive", headers=editor)
    response = await client.post(
        f"/v1/systems/{system['id']}/models",
        json={"model_id": model["id"], "description_of_use": "x"},
        headers=editor,
    )
    assert_problem(response, 409)
    assert (await client.get(f"/v1/systems/{system['id']}/models", headers=editor)).json() == []


async def test_linked_model_can_be_archived_and_deleting_system_removes_links(
    client: httpx.AsyncClient,
    editor: Headers,
    admin: Headers,
    model_body: dict[str, Any],
    system_body: dict[str, Any],
) -> None:
    model = await create_ok(client, "/v1/models", model_body, editor)
    system = await create_ok(client, "/v1/systems", system_body, editor)
    await create_ok(
        client,
        f"/v1/systems/{system['id']}/models",
        {"model_id": model["id"], "description_of_use": "x"},
        editor,
    )
    archived = await client.post(f"/v1/models/{model['id']}/archive", headers=editor)
    assert archived.json()["archived"] is True
    assert (await client.delete(f"/v1/systems/{system['id']}", headers=admin)).status_code == 204
    assert (await client.get(f"/v1/models/{model['id']}/systems", headers=editor)).json() == []
    assert (await client.delete(f"/v1/models/{model['id']}", headers=admin)).status_code == 204
