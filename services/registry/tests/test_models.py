"""AI models: CRUD, validation, uniqueness, concurrency control, archive, delete, history."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from modelyard_registry.db import HistoryEntry, OutboxEvent
from modelyard_testkit.testing import assert_problem, create_ok

Headers = dict[str, str]


async def test_create_read_update_model(
    client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    created = await create_ok(client, "/v1/models", model_body, editor)
    assert created["name"] == "fraud-detector"
    assert created["learning_type"] == "supervised"
    assert created["tags"] == ["payments", "risk"]
    assert created["archived"] is False
    assert created["created_by"] == "alice"

    got = await client.get(f"/v1/models/{created['id']}", headers=editor)
    assert got.status_code == 200
    assert got.json() == created
    assert got.headers["etag"] == created["etag"]

    patched = await client.patch(
        f"/v1/models/{created['id']}",
        json={"description": "new text", "tags": ["NLP", "nlp", "risk"]},
        headers={**editor, "If-Match": got.headers["etag"]},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["description"] == "new text"
    assert body["tags"] == ["nlp", "risk"]
    assert body["etag"] != created["etag"]
    assert patched.headers["etag"] == body["etag"]


async def test_learning_types_have_definitions(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/learning-types")
    assert response.status_code == 200
    kinds = {t["id"]: t for t in response.json()}
    assert set(kinds) == {"supervised", "unsupervised", "semi_supervised", "reinforcement"}
    assert all(len(t["definition"]) > 80 for t in kinds.values())


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"learning_type": "deep"}, "learning_type"),
        ({"description": "d" * 20_001}, "description"),
        ({"tags": ["has space"]}, "tags.0"),
        ({"tags": "payments"}, "tags"),
        ({"properties": {"accuracy": {"type": "number", "value": "high"}}}, "properties.accuracy"),
        (
            {"properties": {"released": {"type": "date", "value": "yesterday"}}},
            "properties.released",
        ),
        ({"properties": {"bad key!": {"type": "string", "value": "x"}}}, "properties"),
        ({"owner": "not a model field"}, "owner"),
    ],
)
async def test_invalid_model_is_rejected_and_nothing_is_stored(
    client: httpx.AsyncClient,
    editor: Headers,
    model_body: dict[str, Any],
    patch: dict[str, Any],
    field: str,
) -> None:
    response = await client.post("/v1/models", json={**model_body, **patch}, headers=editor)
    assert_problem(response, 422, field)
    listed = await client.get("/v1/models", headers=editor)
    assert listed.json()["items"] == []


async def test_malformed_json_and_bad_ids_are_problems(
    client: httpx.AsyncClient, editor: Headers
) -> None:
    raw = await client.post(
        "/v1/models", content=b"{not json", headers={**editor, "content-type": "application/json"}
    )
    assert_problem(raw, 422)
    assert_problem(await client.get("/v1/models/not-a-uuid", headers=editor), 422, "model_id")
    missing = await client.get("/v1/models/0f8fad5b-d9cb-469f-a165-70867728950e", headers=editor)
    assert_problem(missing, 404)


async def test_names_are_unique_per_workspace_case_insensitively(
    client: httpx.AsyncClient,
    editor: Headers,
    as_role: Any,
    model_body: dict[str, Any],
) -> None:
    await create_ok(client, "/v1/models", model_body, editor)
    clash = await client.post(
        "/v1/models", json={**model_body, "name": "FRAUD-Detector"}, headers=editor
    )
    assert_problem(clash, 409)
    other = await client.post(
        "/v1/models", json=model_body, headers=as_role("editor", ws=f"other-{uuid.uuid4().hex}")
    )
    assert other.status_code == 201


async def test_rename_onto_an_existing_name_is_a_conflict(
    client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    first = await create_ok(client, "/v1/models", model_body, editor)
    second = await create_ok(client, "/v1/models", {**model_body, "name": "other"}, editor)
    response = await client.patch(
        f"/v1/models/{second['id']}",
        json={"name": first["name"]},
        headers={**editor, "If-Match": second["etag"]},
    )
    assert_problem(response, 409)
    unchanged = await client.get(f"/v1/models/{second['id']}", headers=editor)
    assert unchanged.json()["name"] == "other"


async def test_patch_needs_the_current_etag(
    client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    created = await create_ok(client, "/v1/models", model_body, editor)
    url = f"/v1/models/{created['id']}"
    assert_problem(await client.patch(url, json={"provider": "x"}, headers=editor), 428)
    first = await client.patch(
        url, json={"provider": "x"}, headers={**editor, "If-Match": created["etag"]}
    )
    assert first.status_code == 200
    stale = await client.patch(
        url, json={"provider": "y"}, headers={**editor, "If-Match": created["etag"]}
    )
    body = assert_problem(stale, 412)
    assert body["current_etag"] == first.json()["etag"]
    assert (await client.get(url, headers=editor)).json()["provider"] == "x"


async def test_idempotency_key_returns_the_first_result(
    client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    headers = {**editor, "Idempotency-Key": "create-fraud-1"}
    first = await client.post("/v1/models", json=model_body, headers=headers)
    retry = await client.post("/v1/models", json=model_body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    listed = (await client.get("/v1/models", headers=editor)).json()["items"]
    assert len(listed) == 1
    changed = await client.post(
        "/v1/models", json={**model_body, "name": "different"}, headers=headers
    )
    assert_problem(changed, 422, "Idempotency-Key")


async def test_archive_hides_from_default_list_and_unarchive_restores(
    client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    created = await create_ok(client, "/v1/models", model_body, editor)
    archived = await client.post(f"/v1/models/{created['id']}/archive", headers=editor)
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    assert (await client.get("/v1/models", headers=editor)).json()["items"] == []
    only_archived = await client.get("/v1/models?archived=true", headers=editor)
    assert [m["id"] for m in only_archived.json()["items"]] == [created["id"]]
    restored = await client.post(f"/v1/models/{created['id']}/unarchive", headers=editor)
    assert restored.json()["archived"] is False
    assert len((await client.get("/v1/models", headers=editor)).json()["items"]) == 1


async def test_delete_needs_admin_and_no_links(
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
        {"model_id": model["id"], "description_of_use": "scores payments"},
        editor,
    )
    assert_problem(await client.delete(f"/v1/models/{model['id']}", headers=editor), 403)
    blocked = await client.delete(f"/v1/models/{model['id']}", headers=admin)
    body = assert_problem(blocked, 409)
    assert "checkout-risk" in body["detail"]
    assert body["systems"] == [{"id": system["id"], "name": "checkout-risk"}]
    assert (await client.get(f"/v1/models/{model['id']}", headers=editor)).status_code == 200

    unlinked = await client.delete(
        f"/v1/systems/{system['id']}/models/{model['id']}", headers=editor
    )
    assert unlinked.status_code == 204
    deleted = await client.delete(f"/v1/models/{model['id']}", headers=admin)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"/v1/models/{model['id']}", headers=editor), 404)


async def test_history_records_who_what_and_old_new(
    client: httpx.AsyncClient, editor: Headers, as_role: Any, model_body: dict[str, Any]
) -> None:
    created = await create_ok(client, "/v1/models", model_body, editor)
    bob = as_role("editor", sub="bob")
    await client.patch(
        f"/v1/models/{created['id']}",
        json={"provider": "vendor-x"},
        headers={**bob, "If-Match": created["etag"]},
    )
    await client.post(f"/v1/models/{created['id']}/archive", headers=bob)
    history = await client.get(f"/v1/models/{created['id']}/history", headers=editor)
    assert history.status_code == 200
    entries = history.json()["items"]
    assert [e["action"] for e in entries] == ["created", "updated", "archived"]
    assert [e["actor"] for e in entries] == ["alice", "bob", "bob"]
    assert entries[0]["changes"]["name"] == {"old": None, "new": "fraud-detector"}
    assert entries[1]["changes"] == {"provider": {"old": "in-house", "new": "vendor-x"}}
    assert entries[2]["changes"] == {"archived": {"old": False, "new": True}}


async def test_history_survives_deletion(
    client: httpx.AsyncClient, editor: Headers, admin: Headers, model_body: dict[str, Any]
) -> None:
    created = await create_ok(client, "/v1/models", model_body, editor)
    assert (await client.delete(f"/v1/models/{created['id']}", headers=admin)).status_code == 204
    history = (await client.get(f"/v1/models/{created['id']}/history", headers=editor)).json()
    assert [e["action"] for e in history["items"]] == ["created", "deleted"]
    assert history["items"][1]["actor"] == "alice"
    assert history["items"][1]["changes"]["name"] == {"old": "fraud-detector", "new": None}


async def test_expired_idempotency_keys_are_purged(
    app: Any, client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    from datetime import timedelta

    from sqlalchemy import select, update

    from modelyard_common.db import utcnow
    from modelyard_registry.db import IdempotencyRecord

    for key in ("old", "fresh"):
        response = await client.post(
            "/v1/models",
            json={**model_body, "name": key},
            headers={**editor, "Idempotency-Key": f"purge-{key}"},
        )
        assert response.status_code == 201
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "purge-old")
            .values(created_at=utcnow() - timedelta(days=2))
        )
    assert await app.state.runtime.purge_expired() >= 1
    async with app.state.sessionmaker() as session:
        keys = set(
            await session.scalars(
                select(IdempotencyRecord.key).where(IdempotencyRecord.key.like("purge-%"))
            )
        )
    assert keys == {"purge-fresh"}


async def test_a_create_writes_row_history_and_event_together_and_a_clash_writes_none(
    app: FastAPI, client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    created = await create_ok(client, "/v1/models", model_body, editor)
    workspace = created["workspace"]

    async def written() -> tuple[int, int]:
        async with app.state.sessionmaker() as session:
            entries = await session.scalar(
                select(func.count()).where(HistoryEntry.workspace == workspace)
            )
            events = await session.scalar(
                select(func.count()).where(
                    OutboxEvent.payload["data"]["workspace"].astext == workspace
                )
            )
        return int(entries or 0), int(events or 0)

    async with app.state.sessionmaker() as session:
        entry = await session.scalar(
            select(HistoryEntry).where(HistoryEntry.resource_id == uuid.UUID(created["id"]))
        )
        event = await session.scalar(
            select(OutboxEvent).where(OutboxEvent.payload["subject"].astext == created["id"])
        )
    assert entry is not None
    assert (entry.action, entry.actor) == ("created", "alice")
    assert entry.changes["name"] == {"old": None, "new": "fraud-detector"}
    assert entry.changes["approval"] == {"old": None, "new": "draft"}
    assert event is not None
    assert event.routing_key == "registry.model.created"
    # The event carries the view the client got, plus who and where.
    assert event.payload["data"] == {**created, "workspace": workspace, "actor": "alice"}

    before = await written()
    clash = await client.post(
        "/v1/models", json={**model_body, "name": "Fraud-DETECTOR"}, headers=editor
    )
    problem = assert_problem(clash, 409)
    assert problem["detail"] == "A model named 'Fraud-DETECTOR' already exists in this workspace."
    assert await written() == before
