"""Deployer test fixtures: a real Postgres database built by the migrations, a real RabbitMQ
vhost, the app over ASGI, a registry stand-in over real HTTP, and device stand-ins.

Each test works in a fresh workspace (random name), so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import httpx
import pytest
import pytest_asyncio
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from modelyard_testkit.testing import (
    S3_TEST_CREDENTIALS,
    TEST_ADMIN_DB_URL,
    TEST_AMQP_URL,
    TEST_MANAGEMENT_URL,
    TEST_VHOST,
    delete_device_logins,
    ensure_management_api,
    ensure_vhost,
    free_port,
    recreate_database,
    s3_test_server,
)

from modelyard_common.messaging import Broker
from modelyard_deployer.app import create_app
from modelyard_deployer.artifacts import MIN_PART_BYTES, LocalArtifactStore, S3ArtifactStore
from modelyard_deployer.cli import migrate
from modelyard_deployer.settings import DeployerSettings

sys.path.insert(0, str(Path(__file__).parent))

from deployer_testkit import (  # noqa: E402 - found through the path set just above
    JWT_SECRET,
    ArtifactBackend,
    DeviceStandIn,
    EventTap,
    RegistryStandIn,
    Tenant,
    registry_app,
)

ADMIN_URL = TEST_ADMIN_DB_URL
VHOST = TEST_VHOST
AMQP_URL = TEST_AMQP_URL
TEST_MAX_UPLOAD = 4 * 1024 * 1024


S3_BUCKET = "modelyard-test-artifacts"


@pytest.fixture(scope="package")
def artifact_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="deployer-artifacts-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto) on a free port, with the test bucket."""
    with s3_test_server(S3_BUCKET) as url:
        yield url


@pytest.fixture(scope="package")
def s3_spool_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="deployer-s3-spool-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="session", params=["local", "s3"])
async def artifact_backend(
    request: pytest.FixtureRequest, app: FastAPI, artifact_dir: Path
) -> AsyncIterator[ArtifactBackend]:
    """The app's artifact store for one test: the local directory, or an S3 bucket."""
    if request.param == "local":
        yield ArtifactBackend(store=LocalArtifactStore(artifact_dir), spool_dir=artifact_dir)
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    spool_dir = request.getfixturevalue("s3_spool_dir")
    store = S3ArtifactStore(
        bucket=S3_BUCKET,
        prefix=f"t-{uuid.uuid4().hex[:8]}/",
        spool_dir=spool_dir,
        part_bytes=MIN_PART_BYTES,
        endpoint_url=endpoint,
        region="us-east-1",
        **S3_TEST_CREDENTIALS,
    )
    previous = app.state.artifact_store
    app.state.artifact_store = store
    try:
        yield ArtifactBackend(store=store, spool_dir=spool_dir)
    finally:
        app.state.artifact_store = previous
        await store.close()


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def registry() -> AsyncIterator[RegistryStandIn]:
    """A registry stand-in answering `GET /v1/models/{id}` over real HTTP on loopback."""
    stand_in = RegistryStandIn()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            registry_app(stand_in), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.02)
    stand_in.url = f"http://127.0.0.1:{port}"
    yield stand_in
    server.should_exit = True
    await task


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def settings(artifact_dir: Path, registry: RegistryStandIn) -> DeployerSettings:
    await asyncio.to_thread(ensure_vhost, VHOST)
    await asyncio.to_thread(ensure_management_api)
    database_url = await recreate_database(ADMIN_URL, "modelyard_test_deployer")
    result = DeployerSettings(
        database_url=database_url,
        amqp_url=AMQP_URL,
        jwt_secret=JWT_SECRET,
        registry_url=registry.url,
        public_url="http://deployer.test",
        artifact_dir=artifact_dir,
        max_upload_bytes=TEST_MAX_UPLOAD,
        device_offline_after_s=3.0,
        outbox_poll_interval_s=0.2,
        queue_prefix=f"deployer-test-{uuid.uuid4().hex[:8]}",
        broker_management_url=TEST_MANAGEMENT_URL,
        log_json=False,
    )
    # Alembic's env runs its own event loop, so it goes to a thread.
    await asyncio.to_thread(migrate, result)
    return result


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def app(settings: DeployerSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        await application.state.runtime.wait_broker(timeout=30)
        yield application
    await _delete_test_queues(settings)
    await asyncio.to_thread(delete_device_logins, VHOST)


async def _delete_test_queues(settings: DeployerSettings) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for suffix in ("deployment-reports", "device-heartbeats", "registry-models"):
            for name in (
                f"{settings.queue_prefix}.{suffix}",
                f"{settings.queue_prefix}.{suffix}.dead",
            ):
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
        for device_id in DeviceStandIn.created:
            for name in (f"device.{device_id}", f"device.{device_id}.dead"):
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://deployer.test", timeout=30
    ) as http:
        yield http


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def broker() -> AsyncIterator[Broker]:
    """The tests' own broker connection (as an agent or the registry would have)."""
    test_broker = Broker(AMQP_URL, prefetch=50)
    await test_broker.connect()
    yield test_broker
    await test_broker.close()


@pytest_asyncio.fixture(loop_scope="session")
async def tenant(
    client: httpx.AsyncClient, registry: RegistryStandIn, broker: Broker
) -> AsyncIterator[Tenant]:
    """A fresh workspace with an admin and one registered model."""
    workspace = f"ws-{uuid.uuid4().hex[:10]}"
    result = Tenant(client=client, registry=registry, broker=broker, workspace=workspace)
    result.model_id = result.add_model("fraud-detector")
    yield result
    await result.close()


@pytest_asyncio.fixture(loop_scope="session")
async def tap() -> AsyncIterator[EventTap]:
    """Collect the deployer's deployment events for one test."""
    event_tap = await EventTap().start()
    yield event_tap
    await event_tap.close()
