"""Registry against MLflow's model registry: create and list, warm and from the first second.

Runs a real `modelyard-registry serve` (one uvicorn worker) and a real `mlflow server` (3.x, one
worker, as MLflow runs it), both on the same PostgreSQL, each on its own fresh database, and
drives both over real HTTP from one load generator (the gateway bench's `loadgen.ClientProtocol`:
keep-alive connections, raw HTTP/1.1). MLflow is installed from PyPI into `.bench/mlflow-venv`
the first time and reused after.

- first seconds: each service freshly started (its port open, `/readyz` or `/health` answered),
  then c=16 creates at once; completions counted per second. The registry warms its pool,
  statements and imports before it listens, so its first two seconds should run at full speed.
- warm rounds, interleaved (registry, MLflow, registry, ...): create at c=16
  (`POST /v1/models` vs MLflow's `registered-models/create`) and list 50 at c=16
  (`GET /v1/models?limit=50` vs `registered-models/search` with `max_results=50`).
- CPU per create: the registry process's user+system CPU over its warm create rounds (its
  relay publishes their events meanwhile and after; list rounds start once it is done, and
  once both databases are analyzed: see `analyzed`).

Environment: BENCH_ROUNDS (default 3), BENCH_ROUND_S (seconds per round, default 3),
BENCH_CONCURRENCY (default 16), BENCH_FIRST_S (seconds watched after a start, default 4).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import uvloop

from modelyard_testkit.servers import free_port
from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_AMQP_URL,
    TEST_JWT_SECRET,
    bearer,
    ensure_vhost,
    recreate_database,
)

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "services" / "gateway" / "bench"))
from loadgen import ClientProtocol, pct  # noqa: E402  (the gateway bench's load generator)

BIN = Path(sys.executable).parent
MLFLOW_VENV = ROOT / ".bench" / "mlflow-venv"
MLFLOW_REQUIREMENT = "mlflow>=3,<4"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ROUND_S = float(os.environ.get("BENCH_ROUND_S", "3"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
FIRST_S = int(os.environ.get("BENCH_FIRST_S", "4"))
DESCRIPTION = "benchmark model " * 20

# A request for the i-th call: (method, path, JSON body or None).
Call = tuple[str, str, bytes | None]


@dataclass
class Round:
    """What one round measured: requests per second, latencies, per-second completions."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    per_second: list[int] = field(default_factory=list)


def raw_request(host: str, port: int, headers: dict[str, str], call: Call) -> bytes:
    method, path, body = call
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def drive(
    url: str,
    headers: dict[str, str],
    call: Callable[[int], Call],
    *,
    ok: int,
    seconds: float,
    concurrency: int = CONCURRENCY,
) -> Round:
    """Return what `concurrency` connections calling `call(i)` for `seconds` achieved."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    conns: list[ClientProtocol] = []
    for _ in range(concurrency):
        _, proto = await loop.create_connection(ClientProtocol, host, port)
        conns.append(proto)
    counter = iter(range(10**9))
    latencies: list[float] = []
    done_at: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(conn: ClientProtocol) -> None:
        nonlocal errors
        for i in counter:
            if time.perf_counter() >= deadline:
                return
            raw = raw_request(host, port, headers, call(i))
            sent = time.perf_counter()
            try:
                status, _ = await conn.request(raw)
            except ConnectionError:
                errors += 1
                _, conn = await loop.create_connection(ClientProtocol, host, port)
                conns.append(conn)
                continue
            ended = time.perf_counter()
            if status != ok:
                errors += 1
                continue
            latencies.append(ended - sent)
            done_at.append(ended - started)

    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    per_second = [0] * int(seconds)
    for t in done_at:
        if int(t) < len(per_second):
            per_second[int(t)] += 1
    return Round(
        rps=len(latencies) / elapsed,
        p50_ms=pct(latencies, 50) * 1000,
        p99_ms=pct(latencies, 99) * 1000,
        errors=errors,
        per_second=per_second,
    )


def cpu_seconds(pid: int) -> float:
    """Return the user+system CPU seconds process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def outbox_drained(database_url: str, timeout: float = 120) -> None:
    """Wait until the registry's relay has published every event of the creates so far.

    A create round leaves events behind for the relay; the list round that follows would
    otherwise share the process with their publishing, which MLflow (no events) never does.
    """
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        deadline = time.monotonic() + timeout
        query = "SELECT count(*) FROM registry.outbox WHERE published_at IS NULL"
        while time.monotonic() < deadline:
            if not await conn.fetchval(query):
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def analyzed(database_url: str) -> None:
    """Refresh the planner's statistics of every table of the database (`ANALYZE`).

    The create rounds grow a table from nothing to thousands of rows in seconds, faster than
    autovacuum analyzes it (within a minute): the planner, still expecting a handful of rows,
    reads them all and sorts them for each page (3.6 ms of PostgreSQL's CPU per page at 7,000
    rows, against 0.13 ms through the page index). Both databases are analyzed before each list
    round, as a service's tables are in steady use.
    """
    url = database_url.replace("postgresql+asyncpg://", "postgresql://").replace(
        "postgresql+psycopg2://", "postgresql://"
    )
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def mlflow_bin() -> Path:
    """Return MLflow's executable, installing MLflow into its own venv the first time."""
    exe = MLFLOW_VENV / "bin" / "mlflow"
    if exe.exists():
        return exe
    print(f"installing {MLFLOW_REQUIREMENT} into {MLFLOW_VENV} (once) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
    pip = [str(MLFLOW_VENV / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, MLFLOW_REQUIREMENT, "psycopg2-binary"], check=True)
    return exe


class Server:
    """A server process on a free loopback port, started (and restarted) from one command."""

    def __init__(self, argv: Callable[[int], list[str]], env: dict[str, str], cwd: str) -> None:
        self.argv, self.env, self.cwd = argv, env, cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(Path(self.cwd) / f"{Path(self.argv(0)[0]).name}.log", "ab") as log:
            self.process = subprocess.Popen(
                self.argv(self.port),
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """Stop the process group (SIGTERM, then SIGKILL after 20 s)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self.process = None


async def wait_http(server: Server, path: str, timeout: float = 180) -> None:
    """Wait until `server` answers 200 on `path`."""
    parts = urlsplit(server.url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is None or server.process.poll() is not None:
            raise RuntimeError(f"{server.argv(server.port)[0]} exited")
        try:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
            status = (await reader.readline()).split()
            writer.close()
            if len(status) > 1 and status[1] == b"200":
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{server.url}{path} never answered 200")


def registry_create(run: str) -> Callable[[int], Call]:
    def call(i: int) -> Call:
        body = {
            "name": f"bench-{run}-{i}",
            "learning_type": "supervised",
            "description": DESCRIPTION,
            "tags": ["bench", f"t{i % 10}"],
        }
        return "POST", "/v1/models", json.dumps(body).encode()

    return call


def mlflow_create(run: str) -> Callable[[int], Call]:
    def call(i: int) -> Call:
        body = {
            "name": f"bench-{run}-{i}",
            "description": DESCRIPTION,
            "tags": [{"key": "bench", "value": ""}, {"key": f"t{i % 10}", "value": ""}],
        }
        return "POST", "/api/2.0/mlflow/registered-models/create", json.dumps(body).encode()

    return call


def registry_list(_: int) -> Call:
    return "GET", "/v1/models?limit=50", None


def mlflow_search(_: int) -> Call:
    return "GET", "/api/2.0/mlflow/registered-models/search?max_results=50", None


def line(*cells: object) -> str:
    widths = (34, 14, 14, 9)
    pairs = enumerate(zip(cells, widths, strict=True))
    return " ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in pairs)


async def main() -> None:
    ensure_vhost()
    registry_db = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_bench_registry")
    mlflow_db = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_bench_mlflow")
    mlflow = await asyncio.to_thread(mlflow_bin)
    work = tempfile.mkdtemp(prefix="bench-registry-")
    env = {
        **os.environ,
        "MODELYARD_DATABASE_URL": registry_db,
        "MODELYARD_AMQP_URL": TEST_AMQP_URL,
        "MODELYARD_ENV": "dev",  # the bench signs HS256 dev tokens
        "MODELYARD_JWT_SECRET": TEST_JWT_SECRET,
        "MODELYARD_LOG_LEVEL": "WARNING",
    }
    migrate = [str(BIN / "modelyard-registry"), "migrate"]
    await asyncio.to_thread(subprocess.run, migrate, env=env, check=True)
    registry = Server(
        lambda port: [str(BIN / "modelyard-registry"), "serve", "--port", str(port)], env, work
    )
    mlflow_url = mlflow_db.replace("postgresql+asyncpg://", "postgresql+psycopg2://", 1)
    mlflow_server = Server(
        lambda port: [
            str(mlflow),
            "server",
            "--backend-store-uri",
            mlflow_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))},
        work,
    )
    auth = {"Authorization": bearer("editor", "bench")["Authorization"]}
    run = uuid.uuid4().hex[:6]
    try:
        # Both fresh: the registry's first seconds (MLflow idle), then MLflow's (registry idle).
        mlflow_server.start()
        await wait_http(mlflow_server, "/health")
        registry.start()
        await wait_http(registry, "/readyz")
        reg_first = await drive(
            registry.url, auth, registry_create(f"{run}f"), ok=201, seconds=FIRST_S
        )
        mlflow_server.stop()
        mlflow_server.start()
        await wait_http(mlflow_server, "/health")
        ml_first = await drive(
            mlflow_server.url, {}, mlflow_create(f"{run}f"), ok=200, seconds=FIRST_S
        )

        reg_create: list[Round] = []
        ml_create: list[Round] = []
        reg_list: list[Round] = []
        ml_list: list[Round] = []
        cpu = 0.0
        creates = 0
        assert registry.process is not None
        for r in range(ROUNDS):
            before = cpu_seconds(registry.process.pid)
            round_ = await drive(
                registry.url, auth, registry_create(f"{run}-{r}"), ok=201, seconds=ROUND_S
            )
            cpu += cpu_seconds(registry.process.pid) - before
            creates += int(round_.rps * ROUND_S)
            reg_create.append(round_)
            ml_create.append(
                await drive(
                    mlflow_server.url, {}, mlflow_create(f"{run}-{r}"), ok=200, seconds=ROUND_S
                )
            )
            await outbox_drained(registry_db)
            await analyzed(registry_db)
            await analyzed(mlflow_db)
            reg_list.append(await drive(registry.url, auth, registry_list, ok=200, seconds=ROUND_S))
            ml_list.append(
                await drive(mlflow_server.url, {}, mlflow_search, ok=200, seconds=ROUND_S)
            )
    finally:
        registry.stop()
        mlflow_server.stop()

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.1f}x" if b else "-"

    def median(rounds: list[Round]) -> float:
        return statistics.median(r.rps for r in rounds)

    def spread(rounds: list[Round]) -> str:
        values = sorted(r.rps for r in rounds)
        return f"{values[0]:.0f}-{values[-1]:.0f}"

    reg_full, ml_full = median(reg_create), median(ml_create)
    reg_two = sum(reg_first.per_second[:2]) / 2
    ml_two = sum(ml_first.per_second[:2]) / 2
    errors = sum(r.errors for r in [reg_first, ml_first, *reg_create, *ml_create])
    errors += sum(r.errors for r in [*reg_list, *ml_list])
    print(
        f"registry vs MLflow: c={CONCURRENCY}, one uvicorn worker each, same PostgreSQL, "
        f"{ROUNDS} interleaved rounds of {ROUND_S:.0f} s (median req/s, range)"
    )
    print(line("what", "registry", "MLflow", "ratio"))
    print(
        line(
            f"create c={CONCURRENCY}, warm",
            f"{reg_full:.0f} ({spread(reg_create)})",
            f"{ml_full:.0f} ({spread(ml_create)})",
            ratio(reg_full, ml_full),
        )
    )
    print(
        line(
            "create, first 2 s after start",
            f"{reg_two:.0f}",
            f"{ml_two:.0f}",
            ratio(reg_two, ml_two),
        )
    )
    print(
        line(
            "  first 2 s / warm",
            f"{reg_two / reg_full:.0%}",
            f"{ml_two / ml_full:.0%}" if ml_full else "-",
            "",
        )
    )
    print(
        line(
            f"list 50 c={CONCURRENCY} (MLflow search)",
            f"{median(reg_list):.0f} ({spread(reg_list)})",
            f"{median(ml_list):.0f} ({spread(ml_list)})",
            ratio(median(reg_list), median(ml_list)),
        )
    )
    print(
        line(
            "create p50 / p99 ms, warm",
            f"{statistics.median(r.p50_ms for r in reg_create):.1f} / "
            f"{statistics.median(r.p99_ms for r in reg_create):.1f}",
            f"{statistics.median(r.p50_ms for r in ml_create):.1f} / "
            f"{statistics.median(r.p99_ms for r in ml_create):.1f}",
            "",
        )
    )
    print(line("registry CPU ms per create", f"{cpu * 1000 / max(creates, 1):.2f}", "", ""))
    print(
        "per second after start: registry "
        + " ".join(str(n) for n in reg_first.per_second)
        + "; MLflow "
        + " ".join(str(n) for n in ml_first.per_second)
    )
    print(f"non-2xx or failed requests: {errors}")


if __name__ == "__main__":
    uvloop.run(main())
