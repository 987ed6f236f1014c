"""Device tokens are shown once: no GET route and no idempotency record holds one."""

from __future__ import annotations

import importlib
import json
import re
import uuid
from types import SimpleNamespace

from deployer_testkit import Tenant
from fastapi import FastAPI
from sqlalchemy import text

from modelyard_common.http import idempotency_scope, request_fingerprint
from modelyard_deployer.devices.schemas import DeviceCreate

scrub = importlib.import_module(
    "modelyard_deployer.migrations.versions.0004_scrub_idempotent_device_tokens"
)


async def test_replayed_device_create_withholds_the_token_and_says_so(
    tenant: Tenant, app: FastAPI
) -> None:
    headers = {**tenant.admin, "Idempotency-Key": f"dev-{uuid.uuid4().hex}"}
    body = {"name": "cam-once", "labels": {"site": "a"}}
    first = await tenant.client.post("/v1/devices", json=body, headers=headers)
    assert first.status_code == 201, first.text
    token = first.json()["token"]
    assert token.startswith("mydev_")

    again = await tenant.client.post("/v1/devices", json=body, headers=headers)
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["token"] is None
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Idempotent-Secret-Withheld"] == "token"
    async with app.state.sessionmaker() as session:
        records = (
            await session.execute(
                text("SELECT body::text FROM deployer.idempotency_keys WHERE workspace = :w"),
                {"w": tenant.workspace},
            )
        ).scalars()
        stored = list(records)
    assert stored
    assert all(token not in record for record in stored)


async def test_no_get_route_returns_a_device_token(tenant: Tenant, app: FastAPI) -> None:
    device = await tenant.register_device("walker")
    rotated = await tenant.client.post(f"/v1/devices/{device.id}/token", headers=tenant.admin)
    assert rotated.status_code == 200, rotated.text
    tokens = [device.token, rotated.json()["token"]]
    version = await tenant.new_version()
    deployments = await tenant.deploy(version["id"], [device])
    grant = await tenant.client.post(
        f"/v1/models/{tenant.model_id}/access",
        json={"subject_type": "user", "subject": "sam", "level": "viewer"},
        headers=tenant.admin,
    )
    assert grant.status_code == 201, grant.text
    rollout = await tenant.client.post(
        "/v1/rollouts",
        json={"version_id": version["id"], "device_ids": [str(device.id)], "waves": [{"count": 1}]},
        headers=tenant.admin,
    )
    assert rollout.status_code == 201, rollout.text
    ids = {
        "model_id": str(tenant.model_id),
        "version_id": version["id"],
        "device_id": str(device.id),
        "deployment_id": deployments[0]["id"],
        "grant_id": grant.json()["id"],
        "rollout_id": rollout.json()["id"],
    }
    paths = ["/openapi.json"] + [
        path for path, operations in app.openapi()["paths"].items() if "get" in operations
    ]
    walked = []
    for path in paths:
        names = re.findall(r"{(\w+)}", path)
        assert set(names) <= set(ids), f"no value for the parameters of {path}"
        url = path.format(**ids)
        for auth in (tenant.admin, {"Authorization": f"Bearer {tokens[1]}"}):
            response = await tenant.client.get(url, headers=auth)
            assert response.status_code < 500, (url, response.text)
            for token in tokens:
                assert token not in response.text, (url, "leaks a device token")
                assert token not in repr(response.headers), (url, "leaks a device token")
        walked.append(path)
    assert "/v1/devices/{device_id}" in walked
    assert "/v1/devices" in walked
    assert len(walked) >= 15, walked


async def test_records_written_before_the_fix_neither_replay_nor_keep_the_token(
    tenant: Tenant, app: FastAPI
) -> None:
    body = {"name": "cam-legacy", "labels": {}}
    key = f"legacy-{uuid.uuid4().hex}"
    leaked = "mydev_" + "L" * 43
    legacy = {"id": str(uuid.uuid4()), "name": "cam-legacy", "token": leaked, "etag": '"1"'}
    insert = text(
        "INSERT INTO deployer.idempotency_keys (workspace, operation, key, subject, request_hash, "
        "status_code, body) VALUES (:w, 'create_device', :k, 'root', :h, 201, CAST(:b AS jsonb))"
    )
    scope = idempotency_scope(
        workspace=tenant.workspace, operation="create_device", key=key, subject="root"
    )
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            insert,
            {
                "w": tenant.workspace,
                "k": key,
                "h": request_fingerprint(DeviceCreate(**body), scope=scope),
                "b": json.dumps(legacy),
            },
        )
    replay = await tenant.client.post(
        "/v1/devices", json=body, headers={**tenant.admin, "Idempotency-Key": key}
    )
    assert replay.status_code == 201, replay.text
    assert replay.json()["token"] is None
    assert replay.headers["Idempotent-Secret-Withheld"] == "token"

    # The upgrade scrubs such records (and running it again changes nothing more).
    statements: list[str] = []
    scrub.op = SimpleNamespace(execute=statements.append)  # type: ignore[attr-defined]
    scrub.upgrade()
    for _ in range(2):
        async with app.state.sessionmaker() as session, session.begin():
            for statement in statements:
                await session.execute(text(statement))
    async with app.state.sessionmaker() as session:
        stored = await session.scalar(
            text(
                "SELECT body::text FROM deployer.idempotency_keys WHERE workspace = :w AND key = :k"
            ),
            {"w": tenant.workspace, "k": key},
        )
    assert stored is not None
    assert leaked not in stored
    assert json.loads(stored)["name"] == "cam-legacy"
