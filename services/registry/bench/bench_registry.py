"""Registry throughput and latency: create and list, at several concurrency levels.

Runs a real `modelyard-registry serve` (one uvicorn worker) against a fresh database and drives
it over real HTTP from this process. Prints a table.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_AMQP_URL,
    TEST_JWT_SECRET,
    bearer,
    ensure_vhost,
    recreate_database,
    wait_for,
)

BIN = Path(sys.executable).parent
LEVELS = (1, 8, 32)
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "600"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_level(
    client: httpx.AsyncClient, kind: str, concurrency: int, headers: dict[str, str]
) -> tuple[float, float, float]:
    latencies: list[float] = []
    counter = iter(range(REQUESTS))
    run_id = uuid.uuid4().hex[:6]

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            if kind == "create":
                r = await client.post(
                    "/v1/models",
                    json={
                        "name": f"bench-{run_id}-{i}",
                        "learning_type": "supervised",
                        "description": "benchmark model " * 20,
                        "tags": ["bench", f"t{i % 10}"],
                    },
                    headers=headers,
                )
                assert r.status_code == 201, r.text
            else:
                r = await client.get("/v1/models?limit=50&tag=t3", headers=headers)
                assert r.status_code == 200, r.text
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return REQUESTS / elapsed, statistics.median(latencies) * 1000, p99 * 1000


async def main() -> None:
    ensure_vhost()
    url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_bench_registry")
    env = {
        **os.environ,
        "MODELYARD_DATABASE_URL": url,
        "MODELYARD_AMQP_URL": TEST_AMQP_URL,
        "MODELYARD_ENV": "dev",  # the bench signs HS256 dev tokens
        "MODELYARD_JWT_SECRET": TEST_JWT_SECRET,
        "MODELYARD_LOG_LEVEL": "WARNING",
    }
    migrate = await asyncio.create_subprocess_exec(
        str(BIN / "modelyard-registry"), "migrate", env=env
    )
    assert await migrate.wait() == 0
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        str(BIN / "modelyard-registry"), "serve", "--port", str(port), env=env
    )
    base = f"http://127.0.0.1:{port}"
    headers = bearer("editor", "bench")
    try:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout=30, interval=0.2)
            rows = []
            for kind in ("create", "list"):
                for level in LEVELS:
                    rps, p50, p99 = await run_level(client, kind, level, headers)
                    rows.append((kind, level, rps, p50, p99))
    finally:
        server.terminate()
        await server.wait()
    print(f"registry: {REQUESTS} requests per row, one uvicorn worker, 2-core machine")
    print(f"{'operation':<10} {'concurrency':>11} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, level, rps, p50, p99 in rows:
        print(f"{kind:<10} {level:>11} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
