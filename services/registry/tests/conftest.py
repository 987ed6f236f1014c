"""Registry test fixtures: a fresh database built by the migrations, the real broker, an app."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from modelyard_registry.app import create_app
from modelyard_registry.cli import migrate
from modelyard_registry.settings import RegistrySettings
from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_AMQP_URL,
    TEST_JWT_SECRET,
    EventCapture,
    bearer,
    ensure_vhost,
    recreate_database,
)


@pytest.fixture(scope="package")
async def database_url() -> str:
    url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_test_registry")
    await asyncio.to_thread(migrate, url)
    return url


@pytest.fixture(scope="package")
def settings(database_url: str) -> RegistrySettings:
    ensure_vhost()
    return RegistrySettings(
        database_url=database_url,
        amqp_url=TEST_AMQP_URL,
        jwt_secret=TEST_JWT_SECRET,
        outbox_poll_interval_s=0.2,
        log_json=False,
    )


@pytest.fixture(scope="package")
async def app(settings: RegistrySettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30):
        await application.state.runtime.wait_broker()
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as c:
        yield c


@pytest.fixture
def workspace() -> str:
    """A workspace of its own for each test: rows of other tests are invisible to it."""
    return f"ws-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def as_role(workspace: str) -> Callable[..., dict[str, str]]:
    def headers(role: str = "editor", ws: str | None = None, sub: str = "alice") -> dict[str, str]:
        return bearer(role, ws or workspace, sub=sub)

    return headers


@pytest.fixture
def editor(as_role: Callable[..., dict[str, str]]) -> dict[str, str]:
    return as_role("editor")


@pytest.fixture
def admin(as_role: Callable[..., dict[str, str]]) -> dict[str, str]:
    return as_role("admin")


@pytest.fixture
async def events(settings: RegistrySettings) -> AsyncIterator[EventCapture]:
    async with EventCapture(settings.amqp_url, "registry.#") as capture:
        yield capture


@pytest.fixture
def model_body() -> dict[str, Any]:
    return copy.deepcopy(MODEL)


@pytest.fixture
def system_body() -> dict[str, Any]:
    return copy.deepcopy(SYSTEM)


MODEL = {
    "name": "fraud-detector",
    "description": "## Features\nScores payments.\n\n## Known limits\nNo B2B data.",
    "learning_type": "supervised",
    "functionality": "fraud detection",
    "foundations": "gradient boosted trees",
    "provider": "in-house",
    "tags": ["payments", "risk"],
    "properties": {"accuracy": {"type": "number", "value": 0.97}},
}

SYSTEM = {
    "name": "checkout-risk",
    "description": "Blocks risky payments.",
    "purpose": "Fraud prevention",
    "owner": "payments-team",
    "status": "draft",
    "risk_level": "high",
    "ai_act_role": "deployer",
    "tags": ["payments"],
}
