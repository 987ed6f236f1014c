"""Gateway chaos: real gateway process, private PostgreSQL, fake OpenAI backends killed with -9.

`python tests/chaos/gateway_chaos.py [--requests 1000] [--scenario churn|hang|both]` runs a
scenario and prints its table; `test_gateway_chaos.py` runs the same code with assertions.

churn: 3 backends, N chat completions (every other one streaming, 8 concurrent) while a random
backend is killed (SIGKILL) every 0.5 s and restarted 1 s later, at least one always alive.
hang: a backend that accepts connections and never answers sits first in the group; each
request may pay at most one first-byte deadline, and once it is cooled none.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from chaoskit import Proc, print_table, wait_port

from modelyard_common.auth import issue_token
from modelyard_testkit.servers import PrivatePostgres, free_port, port_open

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
JWT_SECRET = "chaos-secret-0123456789abcdefghijklmnop"
WORKSPACE = "chaos"


class Backend(Proc):
    """A fake OpenAI backend process on a fixed port, killable and restartable."""

    def __init__(self, name: str, *, mode: str = "ok") -> None:
        super().__init__()
        self.name = name
        self.mode = mode
        self.port = free_port()

    def argv(self) -> list[str]:
        return [
            PYTHON,
            str(HERE / "fake_openai.py"),
            *("--port", str(self.port), "--name", self.name, "--mode", self.mode),
        ]

    @property
    def listening(self) -> bool:
        return self.alive and port_open(self.port)


class Gateway(Proc):
    """The gateway as its own process (`python -m modelyard_gateway serve`)."""

    def __init__(self, database_url: str, **settings: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "MODELYARD_ENV": "dev",
            "MODELYARD_DATABASE_URL": database_url,
            "MODELYARD_JWT_SECRET": JWT_SECRET,
            "MODELYARD_LOG_JSON": "false",
            "MODELYARD_GATEWAY_CONSUME_EVENTS": "false",
            **{f"MODELYARD_GATEWAY_{k.upper()}": str(v) for k, v in settings.items()},
        }
        log = Path(tempfile.gettempdir()) / f"modelyard-chaos-gw-{self.port}.log"
        super().__init__(env, log)

    def argv(self) -> list[str]:
        return [PYTHON, "-m", "modelyard_gateway", "serve", "--port", str(self.port)]

    def migrate(self) -> None:
        subprocess.run(
            [PYTHON, "-m", "modelyard_gateway", "migrate"],
            env=self.env,
            check=True,
            capture_output=True,
        )


async def _configure(gateway: Gateway, backends: list[Backend], *, health_path: str) -> str:
    """Create one instance per backend, group `chat` in that order, and a key; return the key."""
    token = issue_token(secret=JWT_SECRET, sub="chaos", roles=["admin"], workspace=WORKSPACE)
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        ids = []
        for b in backends:
            r = await http.post(
                "/v1/instances",
                json={
                    "name": b.name,
                    "kind": "local",
                    "host": "127.0.0.1",
                    "port": b.port,
                    "upstream_model": f"model-{b.name}",
                    "connect_timeout_s": 1.0,
                    "health_path": health_path,
                },
            )
            r.raise_for_status()
            ids.append(r.json()["id"])
        r = await http.post("/v1/groups", json={"name": "chat", "instance_ids": ids})
        r.raise_for_status()
        r = await http.post("/v1/keys", json={"name": "chaos", "groups": None})
        r.raise_for_status()
        key: str = r.json()["key"]
    # The routing catalog follows by NOTIFY; wait until the group answers.
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        deadline = time.monotonic() + 20
        while True:
            r = await http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
            if r.status_code == 200 and any(m["id"] == "chat" for m in r.json()["data"]):
                return key
            if time.monotonic() > deadline:
                raise RuntimeError(f"group never became visible: {r.status_code} {r.text}")
            await asyncio.sleep(0.1)


@dataclass
class Figures:
    """What one scenario measured."""

    scenario: str
    requests: int = 0
    ok_plain: int = 0
    ok_streams: int = 0
    plain_errors: int = 0
    streams_failed_before_first_byte: int = 0
    streams_cut_midway: int = 0
    streams_cut_silently: int = 0
    kills: int = 0
    slow: int = 0  # requests that paid a first-byte deadline (hang scenario)
    latencies_ms: list[float] = field(default_factory=list)
    error_codes: Counter[str] = field(default_factory=Counter)
    served_by: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def client_errors(self) -> int:
        """Errors that must be 0: failed plain requests and streams that never started."""
        return self.plain_errors + self.streams_failed_before_first_byte

    def row(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms) or [0.0]
        return {
            "scenario": self.scenario,
            "requests": self.requests,
            "ok plain": self.ok_plain,
            "ok streams": self.ok_streams,
            "plain errors": self.plain_errors,
            "streams failed before 1st byte": self.streams_failed_before_first_byte,
            "streams cut mid-way": self.streams_cut_midway + self.streams_cut_silently,
            "backend kills": self.kills,
            "slow (paid a 1st-byte deadline)": self.slow,
            "p50 ms": round(statistics.median(lat), 1),
            "p99 ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
            "max ms": round(lat[-1], 1),
            "seconds": round(self.seconds, 1),
        }


async def _load(
    gateway: Gateway,
    key: str,
    figures: Figures,
    *,
    requests: int,
    concurrency: int,
    slow_after_s: float | None = None,
) -> None:
    counter = iter(range(requests))
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def one(http: httpx.AsyncClient, i: int) -> None:
        stream = i % 2 == 1
        body = {"model": "chat", "messages": [{"role": "user", "content": f"n{i}"}]}
        started = time.perf_counter()
        try:
            if not stream:
                r = await http.post("/v1/chat/completions", json=body, headers=headers)
                if r.status_code == 200 and r.json().get("choices"):
                    figures.ok_plain += 1
                    figures.served_by[r.headers.get("x-modelyard-instance", "?")] += 1
                else:
                    figures.plain_errors += 1
                    figures.error_codes[f"plain {r.status_code} {_code(r)}"] += 1
            else:
                body["stream"] = True
                async with http.stream(
                    "POST", "/v1/chat/completions", json=body, headers=headers
                ) as r:
                    if r.status_code != 200:
                        await r.aread()
                        figures.streams_failed_before_first_byte += 1
                        figures.error_codes[f"stream {r.status_code} {_code(r)}"] += 1
                    else:
                        text = ""
                        try:
                            async for piece in r.aiter_text():
                                text += piece
                        except httpx.HTTPError:
                            figures.streams_cut_silently += 1
                            return
                        if "[DONE]" in text:
                            figures.ok_streams += 1
                            figures.served_by[r.headers.get("x-modelyard-instance", "?")] += 1
                        elif "stream_interrupted" in text:
                            figures.streams_cut_midway += 1
                        else:
                            figures.streams_cut_silently += 1
        except httpx.HTTPError as exc:
            # The gateway itself failed to answer: counts against the request's kind.
            if stream:
                figures.streams_failed_before_first_byte += 1
            else:
                figures.plain_errors += 1
            figures.error_codes[f"transport {type(exc).__name__}"] += 1
        finally:
            elapsed = time.perf_counter() - started
            figures.latencies_ms.append(elapsed * 1000)
            if slow_after_s is not None and elapsed >= slow_after_s:
                figures.slow += 1
            figures.requests += 1

    async def worker(http: httpx.AsyncClient) -> None:
        for i in counter:
            await one(http, i)

    async with httpx.AsyncClient(base_url=gateway.url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))


def _code(r: httpx.Response) -> str:
    with contextlib.suppress(Exception):
        return str(r.json()["error"]["code"])
    return ""


async def _churn(backends: list[Backend], stop: asyncio.Event, figures: Figures) -> None:
    """Every 0.5 s kill -9 a random live backend (never the last one); restart it 1 s later."""
    loop = asyncio.get_running_loop()
    restarts: list[asyncio.Task[None]] = []

    async def restart_later(b: Backend) -> None:
        await asyncio.sleep(1.0)
        b.start()
        await asyncio.to_thread(wait_port, b.port, 20, b.name)

    rng = random.Random(9)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        if stop.is_set():
            break
        alive = [b for b in backends if b.listening]
        if len(alive) < 2:
            continue
        victim = rng.choice(alive)
        victim.kill()
        figures.kills += 1
        restarts.append(loop.create_task(restart_later(victim)))
    for task in restarts:
        with contextlib.suppress(Exception):
            await task


@contextlib.asynccontextmanager
async def _stack(backends: list[Backend], **settings: object) -> AsyncIterator[tuple[Gateway, str]]:
    """Start a private PostgreSQL, the backends and a gateway in front of them (group `chat`)."""
    pg = await asyncio.to_thread(lambda: PrivatePostgres().start())
    gateway: Gateway | None = None
    try:
        conn = await asyncpg.connect(pg.admin_url.replace("+asyncpg", ""))
        try:
            await conn.execute("CREATE DATABASE modelyard_chaos")
        finally:
            await conn.close()
        gateway = Gateway(
            pg.admin_url.rsplit("/", 1)[0] + "/modelyard_chaos",
            health_interval_s=1.0,
            health_timeout_s=0.5,
            **settings,
        )
        await asyncio.to_thread(gateway.migrate)
        for b in backends:
            b.start()
        for b in backends:
            await asyncio.to_thread(wait_port, b.port, 20, b.name)
        await asyncio.to_thread(gateway.start)
        await asyncio.to_thread(wait_port, gateway.port, 30, "gateway")
        # Health paths answer (for `hang` too: a wedged worker behind a live server).
        yield gateway, await _configure(gateway, backends, health_path="/v1/models")
    except BaseException:
        if gateway is not None and gateway.log is not None:
            print(f"gateway log kept: {gateway.log}")
            gateway.log = None  # keep it
        raise
    finally:
        if gateway is not None:
            gateway.stop()
            if gateway.log is not None:
                gateway.log.unlink(missing_ok=True)
        for b in backends:
            b.kill()
        await asyncio.to_thread(pg.close)


async def run_churn(requests: int = 1000, concurrency: int = 8) -> Figures:
    """Run the kill-and-restart scenario and return its figures."""
    figures = Figures("churn: kill -9 every 0.5 s, restart after 1 s")
    backends = [Backend(n) for n in ("alpha", "beta", "gamma")]
    settings = {"health_failures": 1, "first_byte_timeout_s": 2.0, "answer_timeout_s": 5.0}
    async with _stack(backends, **settings) as (gateway, key):
        stop = asyncio.Event()
        killer = asyncio.create_task(_churn(backends, stop, figures))
        started = time.monotonic()
        try:
            await _load(gateway, key, figures, requests=requests, concurrency=concurrency)
        finally:
            figures.seconds = time.monotonic() - started
            stop.set()
            await killer
    return figures


async def run_hang(requests: int = 200, concurrency: int = 8, first_byte_s: float = 1.0) -> Figures:
    """Run the hanging-backend scenario and return its figures."""
    figures = Figures(f"hang: first instance never answers (first byte {first_byte_s:g} s)")
    backends = [Backend("wedged", mode="hang"), Backend("alpha"), Backend("beta")]
    settings = {"first_byte_timeout_s": first_byte_s, "answer_timeout_s": first_byte_s}
    async with _stack(backends, **settings) as (gateway, key):
        started = time.monotonic()
        await _load(
            gateway,
            key,
            figures,
            requests=requests,
            concurrency=concurrency,
            slow_after_s=first_byte_s * 0.9,
        )
        figures.seconds = time.monotonic() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--scenario", default="both", choices=["churn", "hang", "both"])
    args = parser.parse_args()
    rows = []
    if args.scenario in ("churn", "both"):
        churn = asyncio.run(run_churn(args.requests))
        rows.append(churn.row())
        if churn.error_codes:
            print("errors:", dict(churn.error_codes))
    if args.scenario in ("hang", "both"):
        hang = asyncio.run(run_hang(max(100, args.requests // 5)))
        rows.append(hang.row())
        if hang.error_codes:
            print("errors:", dict(hang.error_codes))
    print_table(rows, "Gateway chaos")


if __name__ == "__main__":
    main()
