"""Fixtures: a fresh database built by the gateway's migrations, fake backends, gateway replicas."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from gateway_policy_kit import registry  # noqa: E402, F401 - the registry's events, a fixture
from gateway_testkit import Admin, BackendPool, FakeBackend, GatewayServer  # noqa: E402

from modelyard_gateway.migrations import migrate  # noqa: E402
from modelyard_gateway.settings import GatewaySettings  # noqa: E402
from modelyard_testkit.testing import (  # noqa: E402
    TEST_ADMIN_DB_URL,
    TEST_AMQP_URL,
    TEST_VHOST,
    ensure_vhost,
    recreate_database,
)

ADMIN_URL = TEST_ADMIN_DB_URL
TEST_DB = "modelyard_test_gateway"


@pytest.fixture(scope="package")
def database_url() -> str:
    """Return the URL of a database recreated for this run and migrated to head."""
    url: str = asyncio.run(recreate_database(ADMIN_URL, TEST_DB))
    migrate(url)
    return url


@pytest.fixture(scope="package")
def make_settings(database_url: str) -> Callable[..., GatewaySettings]:
    """Return a factory of test settings (short cooldowns and health intervals)."""
    ensure_vhost(TEST_VHOST)

    def make(**overrides: object) -> GatewaySettings:
        values: dict[str, object] = {
            "database_url": database_url,
            "amqp_url": TEST_AMQP_URL,
            "jwt_secret": "gateway-tests-secret-0123456789abcdefghijkl",
            "cooldown_failures": 2,
            "cooldown_s": 1.0,
            "health_interval_s": 0.3,
            "health_timeout_s": 0.5,
            "health_failures": 1,
            "log_json": False,
            # No registry runs beside these tests: asking it fails fast (the policy gate then
            # knows only what its projection holds).
            "registry_url": "http://127.0.0.1:9",
            **overrides,
        }
        return GatewaySettings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="package")
def gateway(make_settings: Callable[..., GatewaySettings]) -> Iterator[GatewayServer]:
    """Yield the main gateway replica (consumes deployer events too)."""
    server = GatewayServer(make_settings()).start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def replica(
    make_settings: Callable[..., GatewaySettings], gateway: GatewayServer
) -> Iterator[GatewayServer]:
    """Yield a second replica against the same database."""
    server = GatewayServer(make_settings(consume_events=False)).start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def backend_pool() -> Iterator[BackendPool]:
    pool = BackendPool()
    yield pool
    pool.close()


@pytest.fixture
def backends(backend_pool: BackendPool) -> Callable[[str], FakeBackend]:
    """Return a maker of fresh, well-behaved fake backends for this test."""

    def make(name: str) -> FakeBackend:
        return backend_pool.new(name)

    return make


@pytest.fixture
async def admin(gateway: GatewayServer) -> AsyncIterator[Admin]:
    """Yield an admin of a workspace of its own (tests never share rows)."""
    user = Admin(gateway)
    yield user
    await user.close()
