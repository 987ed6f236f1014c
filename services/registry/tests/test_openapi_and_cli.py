"""The published contract, and the service as a person runs it: migrate, serve, curl."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_AMQP_URL,
    TEST_JWT_SECRET,
    recreate_database,
    wait_for,
)

BIN = Path(sys.executable).parent


async def test_openapi_documents_every_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation_ids = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            where = f"{method.upper()} {path}"
            assert op.get("operationId"), where
            assert op.get("summary"), where
            operation_ids.append(op["operationId"])
            assert (
                "200" in op["responses"] or "201" in op["responses"] or "204" in op["responses"]
            ), where
            if path.startswith("/v1/") and path != "/v1/learning-types":
                assert "401" in op["responses"], where
                assert "application/problem+json" in op["responses"]["401"]["content"], where
    assert len(operation_ids) == len(set(operation_ids))
    assert {"list_models", "create_model", "update_model", "link_model"} <= set(operation_ids)
    schemas = spec["components"]["schemas"]
    assert "examples" in schemas["AIModelCreate"]
    assert schemas["Problem"]["properties"]["status"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def served_registry() -> AsyncIterator[str]:
    url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_test_registry_cli")
    env = {
        **os.environ,
        "MODELYARD_DATABASE_URL": url,
        "MODELYARD_AMQP_URL": TEST_AMQP_URL,
        "MODELYARD_JWT_SECRET": TEST_JWT_SECRET,
    }
    migrate = await asyncio.create_subprocess_exec(
        str(BIN / "modelyard-registry"), "migrate", env=env
    )
    assert await migrate.wait() == 0
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        str(BIN / "modelyard-registry"),
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as c:

            async def ready() -> bool:
                try:
                    return (await c.get(f"{base}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout=30, interval=0.2)
        yield base
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)


async def test_migrate_then_serve_answers_a_round_trip(served_registry: str) -> None:
    cli = await asyncio.create_subprocess_exec(
        str(BIN / "modelyard"),
        *("dev-token", "--sub", "alice", "--role", "editor", "--workspace", "acme"),
        env={**os.environ, "MODELYARD_JWT_SECRET": TEST_JWT_SECRET},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await cli.communicate()
    assert cli.returncode == 0
    token = out.decode().strip()
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=served_registry, headers=auth) as c:
        model = await c.post(
            "/v1/models", json={"name": "resnet-50", "learning_type": "supervised"}
        )
        assert model.status_code == 201, model.text
        system = await c.post("/v1/systems", json={"name": "triage", "risk_level": "high"})
        assert system.status_code == 201, system.text
        link = await c.post(
            f"/v1/systems/{system.json()['id']}/models",
            json={"model_id": model.json()["id"], "description_of_use": "reads x-rays"},
        )
        assert link.status_code == 201, link.text
        used_by = await c.get(f"/v1/models/{model.json()['id']}/systems")
        assert [s["system_name"] for s in used_by.json()] == ["triage"]
        metrics = await c.get("/metrics")
        assert "modelyard_http_requests_total" in metrics.text
        assert metrics.headers["content-type"].startswith("text/plain")
