"""Test helpers: a fresh database per test session, built by the service's migrations."""

from __future__ import annotations

import asyncio
import subprocess

import asyncpg

from modelyard_common.outbox import asyncpg_dsn


async def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create database `name`; return its SQLAlchemy asyncpg URL."""
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def ensure_vhost(vhost: str) -> None:
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


async def wait_for(
    predicate: object, *, timeout: float = 10.0, interval: float = 0.05
) -> None:
    """Wait until the async callable `predicate` returns truthy; fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await predicate():  # type: ignore[operator]
            return
        if loop.time() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
