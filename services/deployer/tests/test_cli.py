"""The console script: `migrate` builds the schema, `serve` runs a real uvicorn that streams."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest_asyncio
from deployer_testkit import DEFAULT_MANIFEST, MAIN_PY, RegistryStandIn, Tenant, project_zip
from modelyard_testkit.testing import TEST_ADMIN_DB_URL, recreate_database

from modelyard_common.outbox import asyncpg_dsn
from modelyard_deployer.settings import DeployerSettings

CLI = str(Path(sys.executable).with_name("modelyard-deployer"))


def _env(settings: DeployerSettings, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "MODELYARD_DEPLOYER_DATABASE_URL": settings.database_url,
        "MODELYARD_DEPLOYER_AMQP_URL": settings.amqp_url,
        "MODELYARD_DEPLOYER_JWT_SECRET": settings.jwt_secret,
        "MODELYARD_DEPLOYER_REGISTRY_URL": settings.registry_url,
        "MODELYARD_DEPLOYER_CONSUME_EVENTS": "false",
        "MODELYARD_DEPLOYER_LOG_LEVEL": "WARNING",
        **overrides,
    }


async def test_migrate_builds_the_schema(settings: DeployerSettings) -> None:
    url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_test_deployer_cli")
    process = await asyncio.create_subprocess_exec(
        CLI, "migrate", env=_env(settings, MODELYARD_DEPLOYER_DATABASE_URL=url)
    )
    assert await process.wait() == 0
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        tables = {
            row["tablename"]
            for row in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'deployer'"
            )
        }
    finally:
        await connection.close()
    assert {"model_versions", "devices", "deployments", "deployment_events", "outbox"} <= tables


@pytest_asyncio.fixture(loop_scope="session")
async def served(
    settings: DeployerSettings, registry: RegistryStandIn, tmp_path: Path
) -> AsyncIterator[str]:
    """A deployer run by its console script, as in production."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        CLI,
        "serve",
        "--port",
        str(port),
        env=_env(settings, MODELYARD_DEPLOYER_ARTIFACT_DIR=str(tmp_path)),
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url) as http:
            for _ in range(400):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("`modelyard-deployer serve` never answered /healthz")
        yield base_url
    finally:
        process.terminate()
        await process.wait()


async def test_served_deployer_streams_an_upload_and_serves_ranges(
    served: str, tenant: Tenant
) -> None:
    archive = project_zip(
        {"main.py": MAIN_PY, "weights.bin": os.urandom(3 * 1024 * 1024)},
        compression=zipfile.ZIP_STORED,
    )
    async with httpx.AsyncClient(base_url=served, timeout=30) as http:
        created = await http.post(
            f"/v1/models/{tenant.model_id}/versions",
            files={"file": ("project.zip", archive)},
            data={"manifest": json.dumps(DEFAULT_MANIFEST), "title": "over the wire"},
            headers=tenant.admin,
        )
        assert created.status_code == 201, created.text
        version = created.json()
        assert version["sha256"] == hashlib.sha256(archive).hexdigest()
        resumed = await http.get(
            version["artifact_url"], headers={**tenant.admin, "Range": "bytes=1048576-"}
        )
        unknown = await http.get(f"/v1/versions/{uuid.uuid4()}", headers=tenant.admin)

    assert resumed.status_code == 206
    assert resumed.content == archive[1048576:]
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
