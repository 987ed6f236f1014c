"""Test helpers shared by the services' suites: databases, vhosts, tokens, event capture."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractIncomingMessage

from modelyard_common.auth import issue_token
from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.servers import free_port

TEST_ADMIN_DB_URL = os.environ.get(
    "MODELYARD_TEST_ADMIN_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
TEST_VHOST = os.environ.get("MODELYARD_TEST_VHOST", "modelyard_test")
TEST_AMQP_URL = os.environ.get(
    "MODELYARD_TEST_AMQP_URL", f"amqp://guest:guest@127.0.0.1:5672/{TEST_VHOST}"
)
TEST_JWT_SECRET = "test-secret-of-sufficient-length"
# Lets two checkouts run their suites side by side on one machine: each sets its own suffix
# (and MODELYARD_TEST_VHOST), so neither drops the other's databases or queues.
TEST_DB_SUFFIX = os.environ.get("MODELYARD_TEST_DB_SUFFIX", "")
# The databases this process created: the hermetic check (tests/hermetic.py) counts the
# connections to them as this test run's.
CREATED_DATABASES: set[str] = set()


async def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create database `name` (plus MODELYARD_TEST_DB_SUFFIX); return its URL."""
    name = f"{name}{TEST_DB_SUFFIX}"
    CREATED_DATABASES.add(name)
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def ensure_vhost(vhost: str = TEST_VHOST) -> None:
    """Create a RabbitMQ vhost for tests (idempotent) with rabbitmqctl."""
    existing = subprocess.run(
        ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True
    ).stdout.split()
    if vhost not in existing:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
    )


TEST_MANAGEMENT_URL = os.environ.get(
    "MODELYARD_TEST_BROKER_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672"
)


def ensure_management_api(url: str = TEST_MANAGEMENT_URL, timeout_s: float = 60.0) -> None:
    """Make sure RabbitMQ's management API answers (enabling its plugin once if it does not).

    The deployer manages per-device broker logins through it.
    """
    import httpx

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/api/overview", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    if answers():
        return
    subprocess.run(["rabbitmq-plugins", "enable", "rabbitmq_management"], check=True)
    deadline = time.monotonic() + timeout_s
    while not answers():
        if time.monotonic() > deadline:
            raise RuntimeError(f"RabbitMQ management API at {url} did not come up")
        time.sleep(0.5)


def delete_device_logins(vhost: str = TEST_VHOST, url: str = TEST_MANAGEMENT_URL) -> int:
    """Delete the per-device broker logins that hold permissions on a test vhost."""
    import httpx

    parts = urlsplit(url)
    auth = (parts.username or "guest", parts.password or "guest")
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api"
    with httpx.Client(base_url=base, auth=auth, timeout=10) as client:
        quoted = quote(vhost, safe="")
        users = [p["user"] for p in client.get(f"/vhosts/{quoted}/permissions").json()]
        doomed = [u for u in users if u.startswith("device-")]
        for user in doomed:
            client.delete(f"/users/{quote(user, safe='')}")
    return len(doomed)


def bearer(
    role: str, workspace: str, *, sub: str = "tester", secret: str = TEST_JWT_SECRET
) -> dict[str, str]:
    """Return an Authorization header for a test principal."""
    token = issue_token(secret=secret, sub=sub, roles=[role], workspace=workspace)
    return {"Authorization": f"Bearer {token}"}


async def wait_for(
    predicate: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Return the first truthy result of the async `predicate`; fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


class EventCapture:
    """A real, exclusive queue on the events exchange that records what arrives."""

    def __init__(self, amqp_url: str, routing_key: str = "#") -> None:
        self.amqp_url = amqp_url
        self.routing_key = routing_key
        self.events: list[dict[str, Any]] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def __aenter__(self) -> EventCapture:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(f"test-capture-{uuid.uuid4().hex}", exclusive=True)
        await queue.bind(exchange, routing_key=self.routing_key)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.events.append(json.loads(message.body))

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    def of(self, *, type: str | None = None, subject: str | None = None) -> list[dict[str, Any]]:
        """Return captured events matching a type and/or subject."""
        return [
            e
            for e in self.events
            if (type is None or e["type"] == type)
            and (subject is None or e.get("subject") == subject)
        ]

    async def wait(
        self,
        *,
        type: str | None = None,
        subject: str | None = None,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Return matching events once at least `count` have arrived."""

        async def enough() -> list[dict[str, Any]] | None:
            found = self.of(type=type, subject=subject)
            return found if len(found) >= count else None

        result: list[dict[str, Any]] = await wait_for(enough, timeout=timeout)
        return result


async def create_ok(
    client: Any, path: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    """POST `body` and return the created resource, asserting a 201."""
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_problem(response: Any, status: int, *fields: str) -> dict[str, Any]:
    """Assert an RFC 9457 body with `status`, listing each of `fields` as invalid."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    named = {e["field"] for e in body.get("errors") or []}
    for field in fields:
        assert field in named, f"{field} not reported in {body}"
    return body


OIDC_PROVIDER_DIR = Path(__file__).resolve().parents[2] / "oidc"


def _signing_jwk(kind: str, kid: str) -> dict[str, Any]:
    """Return a fresh private JWK (RS256 or ES256) with this key id."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    if kind == "RS256":
        jwk = json.loads(
            RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        )
    else:
        jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
    jwk.update({"kid": kid, "use": "sig", "alg": kind})
    return dict(jwk)


class OidcProvider:
    """A real OpenID provider (node `oidc-provider`) on a free port, started by a test.

    Its clients get JWT access tokens through the client_credentials grant, for the resource
    (audience) they ask for, carrying each client's `claims`. `rotate()` restarts it with new
    signing keys, as an identity provider's key rotation does.
    """

    def __init__(
        self,
        clients: list[dict[str, Any]],
        *,
        audience: str,
        workdir: Path,
        browser_clients: list[dict[str, Any]] | None = None,
        accounts: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.clients = {c["client_id"]: c for c in clients}
        # Public clients signing people in with the authorization code grant and PKCE (a web
        # console: {client_id, redirect_uris, origins}), and the people's claims by login.
        self.browser_clients = browser_clients or []
        self.accounts = accounts or {}
        self.audience = audience
        self.workdir = workdir
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.keys = [_signing_jwk("RS256", "rs-1"), _signing_jwk("ES256", "es-1")]
        self._process: subprocess.Popen[str] | None = None

    @staticmethod
    def install() -> None:
        """Install the provider's npm packages from its lockfile (`npm ci`) if missing."""
        if not (OIDC_PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=OIDC_PROVIDER_DIR,
                check=True,
                timeout=300,
            )

    def start(self) -> OidcProvider:
        """Start the provider and wait until it listens."""
        self.install()
        config = self.workdir / "oidc-config.json"
        config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "issuer": self.issuer,
                    "keys": self.keys,
                    "default_audience": self.audience,
                    "clients": list(self.clients.values()),
                    "browser_clients": self.browser_clients,
                    "accounts": self.accounts,
                }
            )
        )
        self._process = subprocess.Popen(
            ["node", str(OIDC_PROVIDER_DIR / "provider.mjs"), str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # "ready <port>", or "" if it died
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError("the OpenID provider did not start")
        return self

    def stop(self) -> None:
        """Stop the provider (and wait for it)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def rotate(self, *, keep_old: bool = True) -> None:
        """Restart with a new signing key of each kind first (the old ones kept or dropped)."""
        generation = len(self.keys) // 2 + 1
        fresh = [
            _signing_jwk("RS256", f"rs-{generation}"),
            _signing_jwk("ES256", f"es-{generation}"),
        ]
        self.keys = fresh + (self.keys if keep_old else [])
        self.stop()
        self.start()

    def token(self, client_id: str, *, resource: str | None = None) -> str:
        """Return an access token (a JWT) the provider issues to a client."""
        client = self.clients[client_id]
        response = httpx.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client["client_secret"],
                "scope": "api",
                "resource": resource or self.audience,
            },
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


def wait_for_port(
    port: int, *, timeout: float = 30.0, process: subprocess.Popen[Any] | None = None
) -> None:
    """Block until something listens on loopback `port` (fail early if `process` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {timeout}s")
        time.sleep(0.05)


S3_TEST_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


@contextlib.contextmanager
def s3_test_server(*buckets: str, log_path: Path | None = None) -> Iterator[str]:
    """Run an S3-compatible server (moto in server mode) on a free port; yield its URL.

    S3 is outside the product, like a cloud LLM API: tests talk to it over real HTTP.
    """
    import boto3  # type: ignore[import-untyped]  # test-only (moto[server] brings it)

    port = free_port()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, process=process)
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=S3_TEST_CREDENTIALS["access_key_id"],
            aws_secret_access_key=S3_TEST_CREDENTIALS["secret_access_key"],
        )
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            log.close()  # type: ignore[union-attr]
