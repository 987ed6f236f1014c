"""The admin API: validation, secrets, ETags, idempotency, pagination, workspaces, roles."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import asyncpg
import httpx
import openai
import pytest
from gateway_testkit import Admin, FakeBackend, GatewayServer, free_port

from modelyard_common.outbox import asyncpg_dsn

PROBLEM = "application/problem+json"


async def count_rows(database_url: str, table: str, workspace: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        count: int = await conn.fetchval(
            f"SELECT count(*) FROM gateway.{table} WHERE workspace = $1", workspace
        )
        return count
    finally:
        await conn.close()


async def test_invalid_writes_are_problem_json_and_change_nothing(
    admin: Admin, database_url: str
) -> None:
    response = await admin.http.post(
        "/v1/instances", json={"name": "x", "kind": "local", "upstream_model": "m"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == 422

    response = await admin.http.post(
        "/v1/instances",
        json={
            "name": "bad name!",
            "default_params": {"stream": True},
            "kind": "cloud",
            "base_url": "ftp://x",
            "upstream_model": "",
            "read_timeout_s": -1,
        },
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"name", "base_url", "upstream_model", "read_timeout_s", "default_params"} <= fields

    missing = str(uuid.uuid4())
    response = await admin.http.post("/v1/groups", json={"name": "g", "instance_ids": [missing]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "instance_ids.0"

    response = await admin.http.post("/v1/keys", json={"name": "k", "groups": ["no-such-group"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "groups.0"

    for table in ("model_instances", "model_groups", "api_keys"):
        assert await count_rows(database_url, table, admin.workspace) == 0


async def test_cloud_token_is_write_only_encrypted_and_sent_upstream(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend], database_url: str
) -> None:
    backend = backends("cloud")
    secret = "sk-upstream-secret-value-123"
    response = await admin.post(
        "/v1/instances",
        {
            "name": "cloudy",
            "kind": "cloud",
            "base_url": f"http://127.0.0.1:{backend.port}/v1",
            "token": secret,
            "extra_headers": {"X-Org": "acme"},
            "upstream_model": "gpt-x",
            "health_path": "",
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert secret not in response.text
    assert "token" not in created
    assert created["has_token"] is True
    fetched = await admin.http.get(f"/v1/instances/{created['id']}")
    assert secret not in fetched.text

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        sealed = await conn.fetchval(
            "SELECT token_sealed FROM gateway.model_instances WHERE id = $1",
            uuid.UUID(created["id"]),
        )
    finally:
        await conn.close()
    assert sealed
    assert secret not in sealed

    await admin.group("chat", [created])
    c = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=await admin.key(), max_retries=0)
    await c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert backend.headers[-1]["Authorization"] == f"Bearer {secret}"
    assert backend.headers[-1]["X-Org"] == "acme"
    await c.close()


async def test_patch_needs_the_current_etag(
    admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    inst = await admin.instance(backends("e"))
    group = await admin.group("chat", [inst])
    path = f"/v1/groups/{group['id']}"

    response = await admin.http.patch(path, json={"description": "new"})
    assert response.status_code == 428
    response = await admin.http.patch(
        path, json={"description": "new"}, headers={"If-Match": '"999"'}
    )
    assert response.status_code == 412
    assert response.headers["content-type"].startswith(PROBLEM)

    response = await admin.patch(path, {"description": "new"}, headers={"If-Match": group["etag"]})
    assert response.status_code == 200
    assert response.json()["description"] == "new"
    assert response.headers["ETag"] != group["etag"]
    response = await admin.http.patch(
        path, json={"description": "again"}, headers={"If-Match": group["etag"]}
    )
    assert response.status_code == 412
    assert (await admin.http.get(path)).json()["description"] == "new"


async def test_idempotent_creates_return_the_first_result(admin: Admin, database_url: str) -> None:
    body = {"name": "once", "kind": "local", "host": "127.0.0.1", "port": 9, "upstream_model": "m"}
    headers = {"Idempotency-Key": "create-once-1"}
    first = await admin.http.post("/v1/instances", json=body, headers=headers)
    second = await admin.http.post("/v1/instances", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert await count_rows(database_url, "model_instances", admin.workspace) == 1

    key_first = await admin.http.post("/v1/keys", json={"name": "k"}, headers=headers)
    key_again = await admin.http.post("/v1/keys", json={"name": "k"}, headers=headers)
    assert key_first.json()["id"] == key_again.json()["id"]
    assert key_first.json()["key"].startswith("sk-")
    assert key_again.json()["key"] is None  # shown once, never again


async def test_lists_are_cursor_paginated(admin: Admin) -> None:
    for name in ("a", "b", "c"):
        assert (await admin.http.post("/v1/groups", json={"name": name})).status_code == 201
    page = (await admin.http.get("/v1/groups", params={"limit": 2, "sort": "name"})).json()
    assert [g["name"] for g in page["items"]] == ["a", "b"]
    rest = (
        await admin.http.get(
            "/v1/groups", params={"limit": 2, "sort": "name", "cursor": page["next_cursor"]}
        )
    ).json()
    assert [g["name"] for g in rest["items"]] == ["c"]
    assert rest["next_cursor"] is None


async def test_workspaces_and_keys_cannot_see_each_others_groups(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    other = Admin(gateway)
    inst = await admin.instance(backends("mine"))
    group = await admin.group("chat", [inst])
    await admin.group("private", [inst])
    await other.group("theirs", [await other.instance(backends("theirs"))])

    assert (await other.http.get(f"/v1/groups/{group['id']}")).status_code == 404
    assert (await other.http.get(f"/v1/instances/{inst['id']}")).status_code == 404
    patched = await other.http.patch(
        f"/v1/groups/{group['id']}", json={"enabled": False}, headers={"If-Match": group["etag"]}
    )
    assert patched.status_code == 404
    assert [g["name"] for g in (await other.http.get("/v1/groups")).json()["items"]] == ["theirs"]

    limited = await admin.key(groups=["chat"])
    c = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=limited, max_retries=0)
    assert [m.id for m in (await c.models.list()).data] == ["chat"]
    assert (await c.models.retrieve("chat")).id == "chat"
    for forbidden in ("private", "theirs"):
        with pytest.raises(openai.NotFoundError) as caught:
            await c.chat.completions.create(
                model=forbidden, messages=[{"role": "user", "content": "x"}]
            )
        assert caught.value.code == "model_not_found"
    theirs = openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key=await other.key(), max_retries=0
    )
    assert [m.id for m in (await theirs.models.list()).data] == ["theirs"]
    await c.close()
    await theirs.close()
    await other.close()


async def test_viewers_read_but_cannot_write(gateway: GatewayServer, admin: Admin) -> None:
    viewer = Admin(gateway, workspace=admin.workspace, role="viewer")
    assert (await viewer.http.get("/v1/groups")).status_code == 200
    response = await viewer.http.post("/v1/groups", json={"name": "g"})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith(PROBLEM)
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        assert (await anonymous.get("/v1/groups")).status_code == 401
    await viewer.close()


async def test_instances_in_a_group_cannot_be_deleted(
    admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    inst = await admin.instance(backends("x"))
    group = await admin.group("chat", [inst])
    response = await admin.http.delete(f"/v1/instances/{inst['id']}")
    assert response.status_code == 409
    assert response.json()["groups"] == ["chat"]
    assert (await admin.delete(f"/v1/groups/{group['id']}")).status_code == 204
    assert (await admin.delete(f"/v1/instances/{inst['id']}")).status_code == 204
    assert (await admin.http.get(f"/v1/instances/{inst['id']}")).status_code == 404


async def test_check_now_reports_latency_or_the_error(
    admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    up = await admin.instance(backends("up"))
    down = await admin.instance(free_port())
    ok = (await admin.http.post(f"/v1/instances/{up['id']}/check")).json()
    assert ok["ok"] is True
    assert ok["status_code"] == 200
    assert ok["latency_ms"] > 0
    failed = (await admin.http.post(f"/v1/instances/{down['id']}/check")).json()
    assert failed["ok"] is False
    # A fixed word, never the transport's own text (which would make /check a port scanner).
    assert failed["error"] == "connect_failed"
    detail = (await admin.http.get(f"/v1/instances/{down['id']}")).json()
    assert detail["health"]["status"] == "down"


async def test_openapi_names_every_operation_and_metrics_count_traffic(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    spec = (await admin.http.get("/openapi.json")).json()
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert all(op.get("operationId") and op.get("summary") for op in operations)
    ids = {op["operationId"] for op in operations}
    assert {
        "create_chat_completion",
        "create_group",
        "update_instance",
        "check_instance",
        "create_key",
        "revoke_key",
    } <= ids

    await admin.group("metered", [await admin.instance(backends("m"), name="metered-1")])
    c = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=await admin.key(), max_retries=0)
    await c.chat.completions.create(model="metered", messages=[{"role": "user", "content": "x"}])
    metrics = (await admin.http.get("/metrics")).text
    labels = f'group="metered",instance="metered-1",workspace="{admin.workspace}"'
    assert (
        "modelyard_gateway_requests_total{"
        + labels.replace(",workspace", ',outcome="ok",workspace')
        + "} 1.0"
        in metrics
    )
    assert "modelyard_gateway_upstream_latency_seconds_count{" + labels + "} 1.0" in metrics
    await c.close()


async def test_a_key_not_yet_in_the_catalog_is_found_in_the_database_once(
    gateway: GatewayServer, admin: Admin, database_url: str
) -> None:
    from modelyard_common.db import make_engine
    from modelyard_gateway.crypto import SecretBox
    from modelyard_gateway.routing.catalog import Catalog

    created = (await admin.http.post("/v1/keys", json={"name": "fresh", "groups": None})).json()
    engine = make_engine(database_url, pool_size=1)
    catalog = Catalog(engine, SecretBox(gateway.settings.encryption_key))  # empty snapshot
    try:
        found = await catalog.client_key(created["key"])
        assert found is not None
        assert found.workspace == admin.workspace
        assert await catalog.client_key("sk-my-unknown") is None
        await admin.http.delete(f"/v1/keys/{created['id']}")
        catalog.snapshot.keys.clear()
        assert await catalog.client_key(created["key"]) is None  # revoked keys are not found
    finally:
        await engine.dispose()
