"""The workspace's policy gate: read by anyone, set by admins, with history and an event."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from modelyard_testkit.testing import EventCapture, assert_problem

Headers = dict[str, str]


async def test_a_new_workspace_has_the_default_gate(
    client: httpx.AsyncClient, as_role: Callable[..., Headers]
) -> None:
    answer = await client.get("/v1/policy", headers=as_role("viewer"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # Tests run with MODELYARD_POLICY_DEFAULT_GATE=off (see the root conftest); the product's
    # default is enforce (tests/test_policy_gate.py runs with it).
    assert body["gate"] == "off"
    assert body["is_default"] is True
    assert body["updated_by"] is None


async def test_an_admin_sets_the_gate_and_it_is_history_and_an_event(
    client: httpx.AsyncClient,
    admin: Headers,
    editor: Headers,
    workspace: str,
    events: EventCapture,
) -> None:
    refused = await client.put("/v1/policy", json={"gate": "warn"}, headers=editor)
    assert_problem(refused, 403)
    for bad in ({"gate": "maybe"}, {"gate": "warn", "extra": 1}, {"gate": "warn\u0000"}, {}):
        assert_problem(await client.put("/v1/policy", json=bad, headers=admin), 422)
    assert (await client.get("/v1/policy", headers=editor)).json()["is_default"] is True

    for gate in ("warn", "enforce"):
        answer = await client.put(
            "/v1/policy", json={"gate": gate, "comment": f"now {gate}"}, headers=admin
        )
        assert answer.status_code == 200, answer.text
    current = (await client.get("/v1/policy", headers=editor)).json()
    assert (current["gate"], current["is_default"], current["comment"]) == (
        "enforce",
        False,
        "now enforce",
    )
    assert current["updated_by"] == "alice"

    history = (await client.get("/v1/policy/history", headers=editor)).json()["items"]
    assert [(h["changes"]["gate"]["old"], h["changes"]["gate"]["new"]) for h in history] == [
        ("off", "warn"),
        ("warn", "enforce"),
    ]
    published = await events.wait(type="registry.policy.updated", count=2)
    mine = [e for e in published if e["data"]["workspace"] == workspace]
    assert [e["data"]["gate"] for e in mine] == ["warn", "enforce"]
    assert all(e["data"]["updated_by"] == "alice" for e in mine)


async def test_each_workspace_has_its_own_gate(
    client: httpx.AsyncClient, as_role: Callable[..., Headers]
) -> None:
    mine = as_role("admin")
    other = as_role("admin", ws="another-workspace-policy")
    assert (await client.put("/v1/policy", json={"gate": "warn"}, headers=mine)).status_code == 200
    theirs = (await client.get("/v1/policy", headers=other)).json()
    assert (theirs["workspace"], theirs["is_default"]) == ("another-workspace-policy", True)


async def test_openapi_documents_the_policy_routes_with_examples(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = {
        op["operationId"]: op
        for path, methods in spec["paths"].items()
        if path.startswith("/v1/policy")
        for op in methods.values()
    }
    assert set(operations) == {"get_policy", "set_policy", "list_policy_history"}
    assert all(op["summary"] for op in operations.values())
    assert {"401", "403", "422"} <= set(operations["set_policy"]["responses"])
    schemas = spec["components"]["schemas"]
    assert schemas["PolicyRead"]["examples"][0]["gate"] == "enforce"
    assert schemas["PolicyUpdate"]["examples"][0]["gate"] == "warn"
    assert schemas["Gate"]["enum"] == ["enforce", "warn", "off"]
