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

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from modelyard_common.auth import issue_token
from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.outbox import asyncpg_dsn

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


async def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create database `name` (plus MODELYARD_TEST_DB_SUFFIX); return its URL."""
    name = f"{name}{TEST_DB_SUFFIX}"
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


def free_port() -> int:
    """Return a TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
