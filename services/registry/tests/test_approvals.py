"""Model approval: four-eyes review, blocking, retirement, re-approval, history and events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from modelyard_testkit.testing import EventCapture, assert_problem, create_ok

Headers = dict[str, str]
RoleHeaders = Callable[..., Headers]


@pytest.fixture
def approver(as_role: RoleHeaders) -> Headers:
    """A second person, holding the approver role beside editor."""
    return as_role("approver", sub="bob")


async def _model(client: httpx.AsyncClient, editor: Headers, body: dict[str, Any]) -> str:
    created = await create_ok(client, "/v1/models", body, editor)
    assert created["approval"] == "draft"
    assert created["approval_conditions"] is None
    return str(created["id"])


async def _request(client: httpx.AsyncClient, mid: str, headers: Headers) -> httpx.Response:
    return await client.post(
        f"/v1/models/{mid}/approval/request", json={"comment": "ready"}, headers=headers
    )


async def _decide(
    client: httpx.AsyncClient, mid: str, headers: Headers, decision: str, **extra: Any
) -> httpx.Response:
    body = {"decision": decision, "comment": f"{decision} after review", **extra}
    return await client.post(f"/v1/models/{mid}/approval/decision", json=body, headers=headers)


async def test_review_then_approval_by_another_person(
    client: httpx.AsyncClient,
    editor: Headers,
    approver: Headers,
    model_body: dict[str, Any],
    events: EventCapture,
) -> None:
    mid = await _model(client, editor, model_body)
    requested = await _request(client, mid, editor)
    assert requested.status_code == 200, requested.text
    assert requested.json()["state"] == "in_review"
    assert requested.json()["requested_by"] == "alice"

    decided = await _decide(client, mid, approver, "approved")
    assert decided.status_code == 200, decided.text
    approval = decided.json()
    assert approval["state"] == "approved"
    assert approval["decided_by"] == "bob"
    assert approval["decision_comment"] == "approved after review"

    model = (await client.get(f"/v1/models/{mid}", headers=editor)).json()
    assert model["approval"] == "approved"
    listed = await client.get("/v1/models", params={"approval": "approved"}, headers=editor)
    assert [m["id"] for m in listed.json()["items"]] == [mid]
    assert (await client.get("/v1/models?approval=draft", headers=editor)).json()["items"] == []

    history = (await client.get(f"/v1/models/{mid}/history", headers=editor)).json()["items"]
    steps = [(h["action"], h["actor"]) for h in history]
    assert steps == [("created", "alice"), ("review_requested", "alice"), ("approved", "bob")]
    assert history[2]["changes"]["approval"] == {"old": "in_review", "new": "approved"}
    assert history[2]["changes"]["comment"]["new"] == "approved after review"

    # Consumers (deployer, gateway) learn the state from the events' model data.
    [event] = await events.wait(type="registry.model.approved", subject=mid)
    assert event["data"]["approval"] == "approved"
    assert event["data"]["workspace"] == model["workspace"]


async def test_four_eyes_the_requester_cannot_decide(
    client: httpx.AsyncClient, as_role: RoleHeaders, model_body: dict[str, Any]
) -> None:
    carol = as_role("admin", sub="carol")  # even an admin cannot approve her own request
    mid = await _model(client, carol, model_body)
    assert (await _request(client, mid, carol)).status_code == 200
    body = assert_problem(await _decide(client, mid, carol, "approved"), 403)
    assert "Four-eyes" in body["detail"]
    assert body["requested_by"] == "carol"
    got = (await client.get(f"/v1/models/{mid}/approval", headers=carol)).json()
    assert got["state"] == "in_review"
    assert got["decided_by"] is None


async def test_deciding_needs_the_approver_role(
    client: httpx.AsyncClient, editor: Headers, as_role: RoleHeaders, model_body: dict[str, Any]
) -> None:
    mid = await _model(client, editor, model_body)
    await _request(client, mid, editor)
    other_editor = as_role("editor", sub="dave")
    assert_problem(await _decide(client, mid, other_editor, "approved"), 403)
    viewer = as_role("viewer", sub="erin")
    assert_problem(await _request(client, mid, viewer), 403)
    assert (await _decide(client, mid, as_role("admin", sub="root"), "approved")).status_code == 200


async def test_restricted_carries_conditions(
    client: httpx.AsyncClient, editor: Headers, approver: Headers, model_body: dict[str, Any]
) -> None:
    mid = await _model(client, editor, model_body)
    await _request(client, mid, editor)
    assert_problem(await _decide(client, mid, approver, "restricted"), 422)
    assert_problem(await _decide(client, mid, approver, "approved", conditions={"text": "x"}), 422)
    conditions = {
        "text": "pilot sites only",
        "device_labels": {"site": ["lyon"]},
        "gateway_groups": ["helpdesk-pilot"],
    }
    decided = await _decide(client, mid, approver, "restricted", conditions=conditions)
    assert decided.status_code == 200, decided.text
    assert decided.json()["conditions"] == conditions
    model = (await client.get(f"/v1/models/{mid}", headers=editor)).json()
    assert (model["approval"], model["approval_conditions"]) == ("restricted", conditions)


async def test_transitions_out_of_order_are_conflicts(
    client: httpx.AsyncClient, editor: Headers, approver: Headers, model_body: dict[str, Any]
) -> None:
    mid = await _model(client, editor, model_body)
    body = assert_problem(await _decide(client, mid, approver, "approved"), 409)
    assert body["approval"] == "draft"
    assert (await _request(client, mid, editor)).status_code == 200
    assert_problem(await _request(client, mid, editor), 409)  # already in review

    # Blocking is a safety stop: allowed from an approved model, by any approver.
    assert (await _decide(client, mid, approver, "approved")).status_code == 200
    assert (await _decide(client, mid, approver, "blocked")).status_code == 200
    assert_problem(await _decide(client, mid, approver, "approved"), 409)

    retire = f"/v1/models/{mid}/approval/retire"
    assert_problem(await client.post(retire, json={"comment": "eol"}, headers=editor), 403)
    assert (await client.post(retire, json={"comment": "eol"}, headers=approver)).status_code == 200
    assert_problem(await client.post(retire, json={"comment": "eol"}, headers=approver), 409)
    assert_problem(await _request(client, mid, editor), 409)
    assert (await client.get(f"/v1/models/{mid}", headers=editor)).json()["approval"] == "retired"


async def test_changing_what_the_model_is_voids_the_approval(
    client: httpx.AsyncClient, editor: Headers, approver: Headers, model_body: dict[str, Any]
) -> None:
    mid = await _model(client, editor, model_body)
    await _request(client, mid, editor)
    await _decide(client, mid, approver, "approved")
    etag = (await client.get(f"/v1/models/{mid}", headers=editor)).headers["etag"]

    # A description edit keeps the approval ...
    kept = await client.patch(
        f"/v1/models/{mid}",
        json={"description": "typo fixed"},
        headers={**editor, "If-Match": etag},
    )
    assert kept.json()["approval"] == "approved"
    # ... a new provider does not.
    voided = await client.patch(
        f"/v1/models/{mid}",
        json={"provider": "another vendor"},
        headers={**editor, "If-Match": kept.headers["etag"]},
    )
    assert voided.status_code == 200, voided.text
    assert voided.json()["approval"] == "draft"
    approval = (await client.get(f"/v1/models/{mid}/approval", headers=editor)).json()
    assert approval["decided_by"] is None
    last = (await client.get(f"/v1/models/{mid}/history", headers=editor)).json()["items"][-1]
    assert last["changes"]["approval"] == {"old": "approved", "new": "draft"}
    assert last["changes"]["reapproval_required"]["new"] == ["provider"]


async def test_approval_is_workspace_scoped_and_not_settable_directly(
    client: httpx.AsyncClient,
    editor: Headers,
    as_role: RoleHeaders,
    model_body: dict[str, Any],
) -> None:
    mid = await _model(client, editor, model_body)
    stranger = as_role("admin", ws="elsewhere", sub="mallory")
    assert_problem(await client.get(f"/v1/models/{mid}/approval", headers=stranger), 404)
    assert_problem(await _decide(client, mid, stranger, "blocked"), 404)
    # Neither create nor PATCH can set the approval: only the review endpoints can.
    sneaky = {**model_body, "name": "sneaky", "approval": "approved"}
    assert_problem(await client.post("/v1/models", json=sneaky, headers=editor), 422, "approval")
    etag = (await client.get(f"/v1/models/{mid}", headers=editor)).headers["etag"]
    patched = await client.patch(
        f"/v1/models/{mid}", json={"approval": "approved"}, headers={**editor, "If-Match": etag}
    )
    assert_problem(patched, 422, "approval")
