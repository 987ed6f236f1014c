"""Benchmark: the gateway against a direct backend, nginx and LiteLLM's proxy; prints a table.

Run from the repository root (what `make bench` does):
`.venv/bin/python services/gateway/bench/bench_gateway.py [--quick] [--skip-litellm]`.
It starts a fast fake backend, the gateway (one uvicorn worker, its own bench database),
nginx as a plain reverse proxy and LiteLLM's proxy (installed on first use into
`.bench/litellm-venv`), then runs the load generator as a separate process for each target at
concurrency 1, 16 and 64, non-streaming and streaming; one proxy runs at a time. Proxies are
pinned to one CPU, the backend and the load generator to the other, on two or more CPUs.

Then the cost of the gateway's per-request bookkeeping: two replicas side by side, `gw-off`
(the request log off, a key without limits, no tracing) and `gw-on` (a key with limits and a
workspace ceiling that never refuse, the request log on, OpenTelemetry exporting every span
over OTLP/HTTP to a loopback sink, `otlp_sink.py`), with `gw-trace` (tracing alone) beside
them, measured in turns (`--overhead-rounds`, medians kept), non-streaming at concurrency 1
(added p50) and 16 (throughput).
`--only-overhead` skips the proxies' comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard_testkit.nginx import nginx_binary, nginx_config
from modelyard_testkit.servers import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PYTHON = sys.executable
BENCH_DIR = ROOT / ".bench"
LITELLM_VENV = BENCH_DIR / "litellm-venv"
DB_ADMIN_URL = os.environ.get(
    "MODELYARD_BENCH_ADMIN_DB", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
BENCH_DB = os.environ.get("MODELYARD_BENCH_DB", "modelyard_bench_gateway")
JWT_SECRET = "bench-secret-0123456789abcdefghijklmnop"
HANG_TIMEOUT_S = 0.5
LITELLM_MASTER_KEY = "sk-bench-" + "0123456789abcdef" * 4


def cpus() -> tuple[str | None, str | None]:
    """Return (proxy CPU, load CPU) for taskset, or Nones on a one-CPU machine."""
    count = os.cpu_count() or 1
    if count < 2 or shutil.which("taskset") is None:
        return None, None
    return "1", "0"


PROXY_CPU, LOAD_CPU = cpus()


def pinned(cmd: list[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if cpu else cmd


@dataclass
class Processes:
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, cmd: list[str], *, env: dict[str, str] | None = None, log: Path
    ) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def http_json(
    method: str,
    url: str,
    body: dict[str, Any] | None,
    token: str,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def start_helper(procs: Processes, logs: Path, script: str, probe: str) -> str:
    """Start one of the bench's loopback servers (beside the load generator); return its URL."""
    port = free_port()
    proc = procs.start(
        pinned([PYTHON, str(HERE / script), "--port", str(port)], LOAD_CPU),
        log=logs / script.replace(".py", ".log"),
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + probe, 15, proc)
    return url


def start_backend(procs: Processes, logs: Path) -> str:
    """Start the fast fake backend; return its URL."""
    return start_helper(procs, logs, "backend.py", "/v1/models")


def fresh_database() -> str:
    """Return the URL of the bench database, recreated and migrated."""
    from modelyard_testkit.testing import recreate_database

    db_url: str = asyncio.run(recreate_database(DB_ADMIN_URL, BENCH_DB))
    env = {"MODELYARD_DATABASE_URL": db_url, "MODELYARD_ENV": "dev"}
    subprocess.run([GATEWAY_CLI, "migrate"], env={**os.environ, **env}, check=True)
    return db_url


GATEWAY_CLI = str(Path(PYTHON).parent / "modelyard-gateway")


def gateway_env(db_url: str) -> dict[str, str]:
    """Return the environment of a bench gateway replica."""
    return {
        "MODELYARD_DATABASE_URL": db_url,
        "MODELYARD_ENV": "dev",  # the bench signs HS256 dev tokens
        "MODELYARD_JWT_SECRET": JWT_SECRET,
        "MODELYARD_LOG_LEVEL": "WARNING",
        "MODELYARD_GATEWAY_CONSUME_EVENTS": "false",
        # Failover is timed on every request, so failing instances never cool down here (a
        # first-byte timeout cools at once: that cooldown ends before the next request).
        "MODELYARD_GATEWAY_COOLDOWN_FAILURES": "1000000000",
        "MODELYARD_GATEWAY_COOLDOWN_S": "0.000001",
        "MODELYARD_GATEWAY_COOLDOWN_MAX_S": "0.000001",
    }


def serve_gateway(procs: Processes, logs: Path, env: dict[str, str], name: str) -> str:
    """Start one gateway replica (pinned to the proxies' CPU); return its URL once it answers."""
    port = free_port()
    proc = procs.start(
        pinned([GATEWAY_CLI, "serve", "--port", str(port)], PROXY_CPU),
        env=env,
        log=logs / f"{name}.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", 30, proc)
    return url


def admin_token(workspace: str) -> str:
    from modelyard_common.auth import issue_token

    return issue_token(secret=JWT_SECRET, sub="bench", roles=["admin"], workspace=workspace)


def start_gateway(procs: Processes, logs: Path, backend: str) -> tuple[str, str]:
    """Start the gateway on a fresh bench database; return (url, client key)."""
    url = serve_gateway(procs, logs, gateway_env(fresh_database()), "gateway")
    token = admin_token("bench")
    backend_port = int(backend.rsplit(":", 1)[1])

    def instance(name: str, port: int, **extra: Any) -> str:
        body = {
            "name": name,
            "kind": "local",
            "host": "127.0.0.1",
            "port": port,
            "upstream_model": "bench-model",
            "health_path": "",
            **extra,
        }
        return str(http_json("POST", url + "/v1/instances", body, token)["id"])

    fast = instance("fast", backend_port)
    refusing = instance("refusing", free_port())
    hanging = instance("hanging", backend_port, path_prefix="/hang", read_timeout_s=HANG_TIMEOUT_S)
    for name, ids in (
        ("chat", [fast]),
        ("failover-refuse", [refusing, fast]),
        ("failover-hang", [hanging, fast]),
    ):
        http_json("POST", url + "/v1/groups", {"name": name, "instance_ids": ids}, token)
    key = str(http_json("POST", url + "/v1/keys", {"name": "bench"}, token)["key"])
    time.sleep(0.5)  # let the catalog reload after the last NOTIFY
    return url, key


def start_sink(procs: Processes, logs: Path) -> str:
    """Start the loopback OTLP/HTTP sink (beside the backend); return its URL."""
    return start_helper(procs, logs, "otlp_sink.py", "/stats")


def chat_group(url: str, token: str, backend: str) -> None:
    """Create the group `chat` of one instance, the fast backend, on the gateway at `url`."""
    body = {
        "name": "fast",
        "kind": "local",
        "host": "127.0.0.1",
        "port": int(backend.rsplit(":", 1)[1]),
        "upstream_model": "bench-model",
        "health_path": "",
    }
    fast = str(http_json("POST", url + "/v1/instances", body, token)["id"])
    http_json("POST", url + "/v1/groups", {"name": "chat", "instance_ids": [fast]}, token)


def start_overhead_pair(
    procs: Processes, logs: Path, backend: str, sink: str
) -> dict[str, tuple[str, str]]:
    """Start `gw-off`, `gw-on` and `gw-trace` on a fresh bench database; return name -> (url,
    key)."""
    env = gateway_env(fresh_database())
    off_env = {**env, "MODELYARD_GATEWAY_REQUEST_LOG_ENABLED": "false"}
    on_env = {
        **env,
        "MODELYARD_GATEWAY_REQUEST_LOG_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
        "MODELYARD_GATEWAY_OTEL_SAMPLE_RATIO": "1.0",
        "MODELYARD_GATEWAY_OTEL_METRICS_INTERVAL_S": "5",
    }
    trace_env = {**on_env, "MODELYARD_GATEWAY_REQUEST_LOG_ENABLED": "false"}
    pair = {
        "gw-off": serve_gateway(procs, logs, off_env, "gateway-off"),
        "gw-on": serve_gateway(procs, logs, on_env, "gateway-on"),
        "gw-trace": serve_gateway(procs, logs, trace_env, "gateway-trace"),
    }
    never = 10**9  # limits that are counted and checked, never reached
    keys: dict[str, tuple[str, str]] = {}
    for name, url in pair.items():
        token = admin_token(f"bench-{name}")
        chat_group(url, token, backend)
        key_body: dict[str, Any] = {"name": "bench"}
        if name == "gw-on":
            limits = {"requests_per_minute": never, "tokens_per_minute": never * 1000}
            http_json("PATCH", url + "/v1/limits", limits, token, {"If-Match": '"0"'})
            key_body["limits"] = {**limits, "tokens_per_day": never * 10**5}
        keys[name] = (url, str(http_json("POST", url + "/v1/keys", key_body, token)["key"]))
    time.sleep(0.5)  # let both catalogs reload after the last NOTIFY
    return keys


def start_nginx(procs: Processes, logs: Path, backend: str) -> str:
    nginx = nginx_binary()
    if nginx is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="nginx-bench-"))
    backend_hostport = backend.removeprefix("http://")
    conf = workdir / "nginx.conf"
    proxy = f"""
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    upstream backend {{
        server {backend_hostport};
        keepalive 256;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}"""
    conf.write_text(nginx_config(workdir, proxy, worker_connections=4096))
    os.chmod(workdir, 0o755)
    proc = procs.start(
        pinned([nginx, "-p", str(workdir), "-c", str(conf)], PROXY_CPU), log=logs / "nginx.log"
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/models", 15, proc)
    return url


def ensure_litellm(logs: Path) -> Path:
    """Return the litellm executable, installing `litellm[proxy]` into the bench venv if needed."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    BENCH_DIR.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    with (logs / "litellm-install.log").open("wb") as log:
        subprocess.run(
            [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    return exe


def start_litellm(procs: Processes, logs: Path, backend: str) -> str:
    exe = ensure_litellm(logs)
    port = free_port()
    config = logs / "litellm.yaml"
    config.write_text(
        f"""
model_list:
  - model_name: chat
    litellm_params:
      model: openai/bench-model
      api_base: {backend}/v1
      api_key: sk-bench
litellm_settings:
  drop_params: true
  telemetry: false
"""
    )
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "true",
        "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY,
    }
    proc = procs.start(
        pinned(
            [
                str(exe),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            PROXY_CPU,
        ),
        env=env,
        log=logs / "litellm.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health/liveliness", 180, proc)
    return url


def loadgen(
    url: str,
    *,
    concurrency: int,
    requests: int,
    stream: bool,
    key: str | None,
    model: str = "chat",
    warmup: int = 100,
    max_seconds: float = 40.0,
) -> dict[str, Any]:
    cmd = [
        PYTHON,
        str(HERE / "loadgen.py"),
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        "--requests",
        str(requests),
        "--warmup",
        str(warmup),
        "--model",
        model,
        "--max-seconds",
        str(max_seconds),
    ]
    if key:
        cmd += ["--key", key]
    if stream:
        cmd.append("--stream")
    out = subprocess.run(
        pinned(cmd, LOAD_CPU), capture_output=True, check=True, timeout=max_seconds + 60
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def fmt(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN -> "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument(
        "--overhead-rounds", type=int, default=3, help="turns of gw-off / gw-on (medians kept)"
    )
    parser.add_argument(
        "--only-overhead", action="store_true", help="direct, gw-off and gw-on only"
    )
    parser.add_argument(
        "--backlog", type=int, default=10_000, help="events waiting when the drain run starts"
    )
    parser.add_argument("--only-drain", action="store_true", help="direct and the drain only")
    args = parser.parse_args()
    counts = {1: 300, 16: 1000, 64: 1000} if args.quick else {1: 2000, 16: 5000, 64: 5000}
    litellm_counts = {1: 100, 16: 300, 64: 300} if args.quick else {1: 300, 16: 1000, 64: 1000}

    logs = Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    procs = Processes()
    targets: dict[str, tuple[str | None, str | None, str]] = {}
    results: dict[tuple[str, bool, int], dict[str, Any]] = {}
    failover: dict[str, dict[str, Any]] = {}
    sink_stats: dict[str, Any] = {}

    def measure(name: str, url: str, key: str | None) -> None:
        targets[name] = (url, key, "")
        for stream in (False, True):
            for concurrency in (1, 16, 64):
                n = (litellm_counts if name == "litellm" else counts)[concurrency]
                try:
                    results[(name, stream, concurrency)] = loadgen(
                        url,
                        concurrency=concurrency,
                        requests=n,
                        stream=stream,
                        key=key,
                        warmup=20 if name == "litellm" else 200,
                    )
                except (subprocess.SubprocessError, ValueError) as exc:
                    detail = getattr(exc, "stderr", b"") or b""
                    tail = detail.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
                    results[(name, stream, concurrency)] = {"failed": tail[0][:150]}

    def measure_other(name: str, start: Callable[[Processes], str], key: str | None) -> None:
        """Measure another proxy, started for it alone; one that cannot start is unavailable."""
        others = Processes()
        try:
            measure(name, start(others), key)
        except Exception as exc:
            targets[name] = (None, None, f"unavailable: {type(exc).__name__}: {exc}"[:200])
        finally:
            others.stop_all()

    backend_procs = Processes()
    try:
        backend = start_backend(backend_procs, logs)
        measure("direct", backend, None)
        drain = measure_drain(logs, backend, args.backlog)
        if args.only_drain:
            print_drain(drain)
            return
        overhead_procs = Processes()
        try:
            sink = start_sink(overhead_procs, logs)
            pair = start_overhead_pair(overhead_procs, logs, backend, sink)
            measure_overhead(pair, results, targets, counts, args.overhead_rounds)
            time.sleep(6)  # the last spans and metrics leave within one export interval
            sink_stats.update(json.loads(urllib.request.urlopen(sink + "/stats").read()))
        finally:
            overhead_procs.stop_all()
        if args.only_overhead:
            print_table(targets, results, failover, logs, sink_stats)
            print_drain(drain)
            return
        # One proxy at a time, each stopped before the next starts: no leftover work competes.
        try:
            gateway, key = start_gateway(procs, logs, backend)
            measure("gateway", gateway, key)
            # A refusing first instance fails over at once; a hanging one only after its timeout.
            for case, requests, warmup in (("refuse", 200, 20), ("hang", 5, 1)):
                failover[case] = loadgen(
                    gateway,
                    concurrency=1,
                    requests=requests,
                    stream=False,
                    key=key,
                    model=f"failover-{case}",
                    warmup=warmup,
                )
        finally:
            procs.stop_all()
        measure_other("nginx", lambda others: start_nginx(others, logs, backend), None)
        if args.skip_litellm:
            targets["litellm"] = (None, None, "unavailable: skipped (--skip-litellm)")
        else:
            measure_other(
                "litellm", lambda others: start_litellm(others, logs, backend), LITELLM_MASTER_KEY
            )
        print_table(targets, results, failover, logs, sink_stats)
        print_drain(drain)
        (logs / "results.json").write_text(
            json.dumps(
                {f"{k[0]}|{'stream' if k[1] else 'plain'}|{k[2]}": v for k, v in results.items()}
                | {f"failover|{k}": v for k, v in failover.items()},
                indent=2,
            )
        )
    finally:
        procs.stop_all()
        backend_procs.stop_all()


BENCH_VHOST = "modelyard_bench"


def queue_depth(name: str) -> int:
    """Return how many messages wait on queue `name` of the bench vhost (ready, not yet taken).

    Asked of the queue itself (a passive declare): rabbitmqctl's figures are statistics
    emitted every few seconds, and read 0 right after a backlog was published.
    """
    import aio_pika

    async def depth() -> int:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:5672/{BENCH_VHOST}")
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            count = queue.declaration_result.message_count
            return int(count or 0)

    return asyncio.run(depth())


def publish_backlog(amqp_url: str, count: int) -> None:
    """Publish `count` endpoint events (each a deployment the gateway has not seen)."""
    import aio_pika

    from modelyard_common.contracts import ENDPOINT_GONE, EVENTS_EXCHANGE
    from modelyard_common.events import new_event

    async def publish() -> None:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=False)
            exchange = await channel.get_exchange(EVENTS_EXCHANGE)
            for _ in range(count):
                data = {
                    "deployment_id": str(uuid.uuid4()),
                    "model_id": str(uuid.uuid4()),
                    "version_id": str(uuid.uuid4()),
                    "device_id": str(uuid.uuid4()),
                    "base_url": "http://127.0.0.1:9/",
                    "sequence": 1,
                }
                event = new_event(type=ENDPOINT_GONE, source="bench", data=data)
                body = event.model_dump_json().encode()
                await exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=ENDPOINT_GONE,
                )

    asyncio.run(publish())


def measure_drain(logs: Path, backend: str, backlog: int) -> dict[str, Any]:
    """c=16 throughput of one replica while its event queue drains `backlog` events, and idle.

    The replica consumes events (its own vhost); it is started once to declare its queues,
    stopped, the backlog is published, and it is started again: the first run is measured while
    it drains (the queue depth before and after says how much it drained meanwhile), the second
    once the queue is empty.
    """
    from modelyard_testkit.testing import ensure_vhost

    ensure_vhost(BENCH_VHOST)
    amqp = f"amqp://guest:guest@127.0.0.1:5672/{BENCH_VHOST}"
    env = {
        **gateway_env(fresh_database()),
        "MODELYARD_GATEWAY_CONSUME_EVENTS": "true",
        "MODELYARD_AMQP_URL": amqp,
        "MODELYARD_GATEWAY_REQUEST_LOG_ENABLED": "false",
    }
    found: dict[str, Any] = {"backlog": backlog}
    procs = Processes()
    try:
        url = serve_gateway(procs, logs, env, "gateway-drain-declare")
        procs.stop_all()
        publish_backlog(amqp, backlog)
        procs = Processes()
        started = time.monotonic()
        url = serve_gateway(procs, logs, env, "gateway-drain")
        token = admin_token("bench-drain")
        chat_group(url, token, backend)
        key = str(http_json("POST", url + "/v1/keys", {"name": "bench"}, token)["key"])
        time.sleep(0.5)
        found["before"] = queue_depth("gateway.endpoints")
        found["draining"] = loadgen(
            url, concurrency=16, requests=20000, stream=False, key=key, warmup=100
        )
        found["after"] = queue_depth("gateway.endpoints")
        deadline = time.monotonic() + 600
        while queue_depth("gateway.endpoints") > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        found["drained_s"] = time.monotonic() - started
        found["idle"] = loadgen(
            url, concurrency=16, requests=20000, stream=False, key=key, warmup=100
        )
    except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
        found["failed"] = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        procs.stop_all()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", BENCH_VHOST], check=False)
    return found


def print_drain(found: dict[str, Any]) -> None:
    """Print the replica's throughput while its event queue drained against idle."""
    if "failed" in found:
        print(f"events backlog: run failed: {found['failed']}")
        return
    busy, idle = found["draining"], found["idle"]
    drained = found["before"] - found["after"]
    print(
        f"events backlog of {found['backlog']}: c=16 {busy['rps']:.0f} req/s while draining "
        f"({drained} events applied during the run, {found['after']} left) vs {idle['rps']:.0f} "
        f"req/s idle: {busy['rps'] / idle['rps']:.2f} of idle (target >= 0.90); the whole "
        f"backlog drained in {found['drained_s']:.0f} s"
    )


def measure_overhead(
    pair: dict[str, tuple[str, str]],
    results: dict[tuple[str, bool, int], dict[str, Any]],
    targets: dict[str, tuple[str | None, str | None, str]],
    counts: dict[int, int],
    rounds: int,
) -> None:
    """Measure gw-off and gw-on in turns; keep each one's median run (p50 at c=1, req/s at 16)."""
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(max(rounds, 1)):
        for concurrency in (1, 16):
            for name, (url, key) in pair.items():
                n = max(counts[concurrency], 1000 if concurrency == 1 else 3000)
                run = loadgen(url, concurrency=concurrency, requests=n, stream=False, key=key)
                runs.setdefault((name, concurrency), []).append(run)
    for (name, concurrency), found in runs.items():
        measure = "p50_ms" if concurrency == 1 else "rps"
        found.sort(key=lambda r: r[measure])
        results[(name, False, concurrency)] = found[len(found) // 2]
        targets[name] = (pair[name][0], pair[name][1], "")


def print_overhead(
    results: dict[tuple[str, bool, int], dict[str, Any]], sink_stats: dict[str, Any]
) -> None:
    """Print what limits, the request log and tracing cost (gw-on against gw-off)."""
    off1, on1 = results.get(("gw-off", False, 1)), results.get(("gw-on", False, 1))
    off16, on16 = results.get(("gw-off", False, 16)), results.get(("gw-on", False, 16))
    if not (off1 and on1 and off16 and on16):
        return
    direct = results.get(("direct", False, 1), {}).get("p50_ms", float("nan"))
    added_off, added_on = off1["p50_ms"] - direct, on1["p50_ms"] - direct
    ratio = on16["rps"] / off16["rps"]
    print(
        "limits + request log + tracing ON vs all OFF (plain): "
        f"added p50 {added_on:.3f} ms vs {added_off:.3f} ms ({added_on - added_off:+.3f} ms; "
        f"target +0.050), c=16 {on16['rps']:.0f} vs {off16['rps']:.0f} req/s "
        f"({ratio:.2f} of OFF; target >= 0.90)"
    )
    trace1, trace16 = results.get(("gw-trace", False, 1)), results.get(("gw-trace", False, 16))
    if trace1 and trace16:
        added_trace = trace1["p50_ms"] - direct
        print(
            f"tracing alone: added p50 {added_trace:.3f} ms ({added_trace - added_off:+.3f} ms), "
            f"c=16 {trace16['rps']:.0f} req/s ({trace16['rps'] / off16['rps']:.2f} of OFF)"
        )
    if sink_stats:
        traces, metrics = sink_stats.get("traces", [0, 0]), sink_stats.get("metrics", [0, 0])
        print(
            f"OTLP sink received {traces[0]} trace exports ({traces[1] / 1e6:.1f} MB) and "
            f"{metrics[0]} metric exports ({metrics[1] / 1e3:.0f} kB)"
        )


def print_table(
    targets: dict[str, tuple[str | None, str | None, str]],
    results: dict[tuple[str, bool, int], dict[str, Any]],
    failover: dict[str, dict[str, Any]],
    logs: Path,
    sink_stats: dict[str, Any] | None = None,
) -> None:
    pin = (
        f"proxies on CPU {PROXY_CPU}, backend+loadgen on CPU {LOAD_CPU}"
        if PROXY_CPU
        else "no CPU pinning"
    )
    print(f"\nModelyard gateway benchmark ({pin}; logs in {logs})")
    header = (
        f"{'target':<9} {'mode':<6} {'conc':>4} {'requests':>8} {'req/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'added p50':>9} {'added p99':>9} {'ttfb p50':>8} {'added ttfb':>10}"
    )
    print(header)
    print("-" * len(header))
    for stream in (False, True):
        for concurrency in (1, 16, 64):
            direct = results.get(("direct", stream, concurrency))
            if direct is not None and "failed" in direct:
                direct = None
            for name in ("direct", "gateway", "gw-off", "gw-on", "gw-trace", "nginx", "litellm"):
                if name not in targets or (
                    targets[name][0] is not None and (name, stream, concurrency) not in results
                ):
                    continue
                url, _, note = targets[name]
                mode = "stream" if stream else "plain"
                if url is None:
                    print(f"{name:<9} {mode:<6} {concurrency:>4} {note}")
                    continue
                r = results[(name, stream, concurrency)]
                if "failed" in r:
                    print(f"{name:<9} {mode:<6} {concurrency:>4} load run failed: {r['failed']}")
                    continue
                added = added99 = added_ttfb = float("nan")
                if direct is not None and name != "direct":
                    added = r["p50_ms"] - direct["p50_ms"]
                    added99 = r["p99_ms"] - direct["p99_ms"]
                    added_ttfb = r["ttfb_p50_ms"] - direct["ttfb_p50_ms"]
                bad = sum(v for k, v in r["statuses"].items() if k != "200") + r["errors"]
                flag = f"  ({bad} non-200)" if bad else ""
                flag += "  (time cap hit)" if r.get("truncated") else ""
                print(
                    f"{name:<9} {mode:<6} {concurrency:>4} {r['requests']:>8} {r['rps']:>9.0f} "
                    f"{fmt(r['p50_ms']):>8} {fmt(r['p99_ms']):>8} "
                    f"{fmt(added):>9} {fmt(added99):>9} "
                    f"{fmt(r['ttfb_p50_ms']):>8} {fmt(added_ttfb):>10}{flag}"
                )
    print()
    for stream in (False, True):
        for concurrency in (1, 16, 64):
            g, lite, ng = (
                r if r is not None and "failed" not in r else None
                for r in (
                    results.get((t, stream, concurrency)) for t in ("gateway", "litellm", "nginx")
                )
            )
            mode = "stream" if stream else "plain"
            parts = []
            if g and lite:
                parts.append(f"gateway/litellm throughput x{g['rps'] / lite['rps']:.1f}")
            if g and ng:
                parts.append(f"gateway/nginx throughput {g['rps'] / ng['rps']:.2f}")
            if parts:
                print(f"{mode:<6} c={concurrency:<3} " + ", ".join(parts))
    print()
    print_overhead(results, sink_stats or {})
    print()
    direct_p50 = results[("direct", False, 1)].get("p50_ms", float("nan"))
    for kind, r in failover.items():
        if "failed" in r:
            print(f"failover ({kind}): load run failed: {r['failed']}")
            continue
        what = (
            "refuses connections" if kind == "refuse" else f"hangs (read timeout {HANG_TIMEOUT_S}s)"
        )
        print(
            f"failover when the first instance {what}: p50 {r['p50_ms']:.2f} ms, "
            f"p99 {r['p99_ms']:.2f} ms (added to direct p50: {r['p50_ms'] - direct_p50:.2f} ms), "
            f"statuses {r['statuses']}"
        )


if __name__ == "__main__":
    main()
