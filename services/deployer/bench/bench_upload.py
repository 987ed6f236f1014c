"""Upload throughput and memory of the deployer, against nginx PUT to disk, in one run.

Starts nginx (Debian's `nginx-light`: its WebDAV module takes a PUT and renames the body into
place), a real deployer (`modelyard-deployer serve`, a uvicorn process as in production) with
the local artifact store, a second one with the S3 store against an S3-compatible server (moto,
as the tests use), and a no-op ASGI app under uvicorn; then uploads a zip of incompressible
random data (stored uncompressed, so the ratio check passes) to each in turn, round after
round, so a slow spell of the shared machine hits all of them alike. The client is curl for
every target (a C client keeps the measurement about the server): `-T` (PUT) to nginx,
`-F file=@...` (multipart, what the SDK, CLI and console send) to the others.

The table gives, per target, MB/s (median and range over the rounds) and the ratio to nginx
in the same round, and each deployer's resident memory before and at its peak during uploads.

    .venv/bin/python services/deployer/bench/bench_upload.py [--size-mb 200] [--rounds 5]

Needs Postgres and RabbitMQ as the tests do (MODELYARD_BENCH_ADMIN_DATABASE_URL,
MODELYARD_BENCH_AMQP_URL override the local defaults) and nginx (`apt-get install nginx-light`;
without it the nginx rows are left out and say so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from modelyard_testkit.bench import print_metrics
from modelyard_testkit.nginx import nginx_binary, nginx_config
from modelyard_testkit.servers import free_port, wait_ready
from modelyard_testkit.testing import S3_TEST_CREDENTIALS, recreate_database, s3_test_server

from modelyard_common.auth import issue_token
from modelyard_common.outbox import asyncpg_dsn

ADMIN_URL = os.environ.get(
    "MODELYARD_BENCH_ADMIN_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("MODELYARD_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SECRET = "bench-secret-0123456789abcdef-0123456789"
WORKSPACE = "bench"
S3_BUCKET = "modelyard-bench"
MiB = 1024 * 1024
MANIFEST = json.dumps(
    {
        "image": "modelyard/python-base:bookworm",
        "main": "main.py",
        "handlers": [{"name": "predict"}],
    }
)


async def drop_database(name: str) -> None:
    """Drop the bench's database once the figures are taken."""
    connection = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def make_zip(path: Path, size_mb: int) -> None:
    """Write a project zip with `size_mb` MiB of random bytes, stored (not compressed)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("main.py", "def predict(payload):\n    return payload\n")
        with archive.open("weights.bin", "w", force_zip64=True) as member:
            for _ in range(size_mb):
                member.write(os.urandom(MiB))


@contextmanager
def registry_stand_in(model_id: str) -> Iterator[str]:
    """Serve `GET /v1/models/<id>` as the registry would, for the one bench model."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path.rstrip("/") != f"/v1/models/{model_id}":
                self.send_error(404)
                return
            body = json.dumps(
                {"id": model_id, "name": "bench-model", "archived": False, "workspace": WORKSPACE}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system, every thread) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def admin_headers(ttl: timedelta = timedelta(hours=2)) -> dict[str, str]:
    """Return the Authorization header of the benches' admin (workspace `bench`)."""
    token = issue_token(secret=SECRET, sub="bench", roles=["admin"], workspace=WORKSPACE, ttl=ttl)
    return {"Authorization": f"Bearer {token}"}


def memory_kib(pid: int) -> dict[str, int]:
    """Return VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


class RssSampler:
    """Samples a process's RSS every few milliseconds while running (peak during a window)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, memory_kib(self.pid)["VmRSS"])
            time.sleep(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def drain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A no-op ASGI app that reads and drops the body: the HTTP stack's own ceiling."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def curl_seconds(command: list[str], expected: int) -> float:
    """Run one curl transfer; return its total time as curl measured it (status required)."""
    result = subprocess.run(
        [*command, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"],
        capture_output=True,
        text=True,
        check=True,
    )
    code, seconds = result.stdout.split()
    if int(code) != expected:
        raise SystemExit(f"{command[-1]} answered {code}, not {expected}")
    return float(seconds)


def post_file(url: str, path: Path, fields: dict[str, str], headers: dict[str, str]) -> float:
    """POST `path` as the multipart `file` part; return the seconds taken (201 required)."""
    command = ["curl", "-F", f"file=@{path};type=application/zip"]
    for name, value in fields.items():
        command += ["--form-string", f"{name}={value}"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    return curl_seconds([*command, url], 201)


def put_file(url: str, path: Path) -> float:
    """PUT `path` as the whole body; return the seconds taken (201 required)."""
    return curl_seconds(["curl", "-T", str(path), url], 201)


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until something accepts connections on loopback `port` (at most 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after 30 s")


@contextmanager
def running_noop_app() -> Iterator[tuple[str, int]]:
    """Serve `drain_app` under uvicorn (as the deployer is served); yield its URL and pid."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench_upload:drain_app",
            "--app-dir",
            str(Path(__file__).parent),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/", process.pid
    finally:
        stop(process)


@contextmanager
def running_nginx(root: Path) -> Iterator[tuple[str, int] | None]:
    """Serve PUT into `root` with nginx's WebDAV module; yield its URL and worker's pid.

    Yields None when nginx is not installed.
    """
    nginx = nginx_binary()
    if nginx is None:
        yield None
        return
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="nginx-", dir=root.parent))
    # The body's temporary file lives beside the target, so nginx's PUT ends in one rename,
    # as the deployer's commit does.
    temp = root / ".tmp"
    temp.mkdir(parents=True)
    conf = workdir / "nginx.conf"
    server = f"""
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            root {root};
            dav_methods PUT DELETE;
            create_full_put_path on;
        }}
    }}"""
    conf.write_text(nginx_config(workdir, server, worker_connections=64, body_temp=temp))
    process = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(conf)])
    try:
        wait_for_port(port, process)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        yield f"http://127.0.0.1:{port}", int(children[0])
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def raw_copy_seconds(source: Path, directory: Path) -> float:
    """Return how long copying `source` into `directory` takes, fsync included."""
    target = directory / "raw-copy.bin"
    started = time.perf_counter()
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def start_deployer(
    port: int,
    *,
    database_url: str,
    amqp_url: str,
    registry_url: str,
    artifacts: Path,
    **settings: str,
) -> subprocess.Popen[bytes]:
    """Migrate the bench database and start `modelyard-deployer serve` on loopback `port`.

    `settings` are more deployer settings by field name (`queue_prefix="x"`).
    """
    cli = Path(sys.executable).with_name("modelyard-deployer")
    env = {
        **os.environ,
        "MODELYARD_DEPLOYER_DATABASE_URL": database_url,
        "MODELYARD_DEPLOYER_AMQP_URL": amqp_url,
        "MODELYARD_ENV": "dev",  # the bench signs HS256 dev tokens
        "MODELYARD_DEPLOYER_JWT_SECRET": SECRET,
        "MODELYARD_DEPLOYER_REGISTRY_URL": registry_url,
        "MODELYARD_DEPLOYER_ARTIFACT_DIR": str(artifacts),
        "MODELYARD_DEPLOYER_LOG_LEVEL": "WARNING",
        **{f"MODELYARD_DEPLOYER_{name.upper()}": value for name, value in settings.items()},
    }
    subprocess.run([str(cli), "migrate"], env=env, check=True)
    return subprocess.Popen(
        [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started by the bench (SIGTERM, then SIGKILL after 30 s)."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_deployer(
    port: int, *, model_id: str, database_url: str, amqp_url: str, artifacts: Path, **settings: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a ready deployer on loopback `port` (registry stand-in knowing `model_id`), then stop it.

    `settings` are more deployer settings by field name, as for `start_deployer`.
    """
    with registry_stand_in(model_id) as registry_url:
        process = start_deployer(
            port,
            database_url=database_url,
            amqp_url=amqp_url,
            registry_url=registry_url,
            artifacts=artifacts,
            **settings,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", process)
            yield process
        finally:
            stop(process)


@dataclass
class Target:
    """One server the zip is uploaded to, and what each round measured of it."""

    name: str
    upload: Callable[[], float]
    clean: Callable[[], None]
    pid: int | None = None
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    idle_kib: int = 0
    peak_kib: int = 0

    def run(self) -> None:
        """Upload once (RSS sampled meanwhile), record the time, then remove what was stored."""
        if self.pid is None:
            self.seconds.append(self.upload())
        else:
            if not self.idle_kib:
                self.idle_kib = memory_kib(self.pid)["VmRSS"]
            used = cpu_seconds(self.pid)
            with RssSampler(self.pid) as sampler:
                self.seconds.append(self.upload())
            self.cpu.append(cpu_seconds(self.pid) - used)
            self.peak_kib = max(self.peak_kib, sampler.peak_kib)
        self.clean()


def deployer_target(
    stack: ExitStack, name: str, zip_path: Path, *, model_id: str, **deployer: Any
) -> Target:
    """Start a deployer (stopped when `stack` closes); return the target uploading versions to it.

    Each version is deleted after its upload. `deployer` are `running_deployer`'s other arguments.
    """
    port = free_port()
    process = stack.enter_context(running_deployer(port, model_id=model_id, **deployer))
    base_url = f"http://127.0.0.1:{port}"
    auth = admin_headers()

    def upload() -> float:
        return post_file(
            f"{base_url}/v1/models/{model_id}/versions",
            zip_path,
            {"manifest": MANIFEST, "title": "bench"},
            auth,
        )

    def clean() -> None:
        listed = httpx.get(f"{base_url}/v1/models/{model_id}/versions", headers=auth).json()
        for version in listed["items"]:
            httpx.delete(f"{base_url}/v1/versions/{version['id']}", headers=auth)

    return Target(name, upload, clean, pid=process.pid)


def rate(size: int, seconds: list[float]) -> str:
    """Return MB/s as 'median (min-max)'."""
    rates = sorted(size / 1e6 / s for s in seconds)
    return f"{statistics.median(rates):,.0f} ({rates[0]:,.0f}-{rates[-1]:,.0f}) MB/s"


def ratio(target: Target, peer: Target) -> str:
    """Return the round-by-round speed ratio of `target` to `peer`: 'median (min-max)'."""
    ratios = sorted(p / t for t, p in zip(target.seconds, peer.seconds, strict=True))
    return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="MiB of random data in the zip")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-s3", action="store_true", help="leave out the S3 store")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="deployer-bench-", dir=os.environ.get("BENCH_DIR")))
    # Whatever happens (a target refusing an upload ends the run), nothing is left behind.
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        zip_path = workdir / "project.zip"
        make_zip(zip_path, args.size_mb)
        size = zip_path.stat().st_size
        model_id = str(uuid.uuid4())
        database_url = asyncio.run(recreate_database(ADMIN_URL, "modelyard_bench_deployer"))
        cleanup.callback(lambda: asyncio.run(drop_database(database_url.rsplit("/", 1)[-1])))
        common = {
            "model_id": model_id,
            "database_url": database_url,
            "amqp_url": AMQP_URL,
            "consume_events": "false",
        }
        targets: list[Target] = []
        with ExitStack() as stack:
            nginx_root = workdir / "nginx"
            nginx = stack.enter_context(running_nginx(nginx_root))
            if nginx is not None:
                nginx_url, nginx_pid = nginx
                put_target = nginx_root / "project.zip"
                targets.append(
                    Target(
                        "nginx PUT to disk",
                        lambda: put_file(f"{nginx_url}/project.zip", zip_path),
                        lambda: put_target.unlink(missing_ok=True),
                        pid=nginx_pid,
                    )
                )
            noop_url, noop_pid = stack.enter_context(running_noop_app())
            targets.append(
                Target(
                    "no-op app under uvicorn (ceiling)",
                    lambda: post_file(noop_url, zip_path, {}, {}),
                    lambda: None,
                    pid=noop_pid,
                )
            )
            targets.append(
                deployer_target(
                    stack,
                    "deployer, local store",
                    zip_path,
                    artifacts=workdir / "artifacts",
                    queue_prefix=f"deployer-bench-{model_id[:8]}",
                    **common,
                )
            )
            if not args.skip_s3:
                s3_url = stack.enter_context(s3_test_server(S3_BUCKET))
                targets.append(
                    deployer_target(
                        stack,
                        "deployer, S3 store (moto server)",
                        zip_path,
                        artifacts=workdir / "spool",
                        queue_prefix=f"deployer-bench-s3-{model_id[:8]}",
                        artifact_backend="s3",
                        s3_endpoint_url=s3_url,
                        s3_bucket=S3_BUCKET,
                        s3_region="us-east-1",
                        **{f"s3_{name}": value for name, value in S3_TEST_CREDENTIALS.items()},
                        **common,
                    )
                )
            copy_seconds: list[float] = []
            for round_number in range(args.rounds):
                # Each round starts with another target, so none always runs first or last.
                shift = round_number % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    target.run()
                copy_seconds.append(raw_copy_seconds(zip_path, workdir))

    rows: list[tuple[str, object]] = [
        ("zip size", f"{size / 1e6:,.1f} MB"),
        ("rounds (each target once per round, order rotated)", args.rounds),
    ]
    peer = targets[0] if nginx is not None else None
    for target in targets:
        rows.append((target.name, rate(size, target.seconds)))
        if peer is not None and target is not peer:
            rows.append((f"  {target.name} / nginx PUT", ratio(target, peer)))
    rows.append(("raw file copy on the same disk (+ fsync)", rate(size, copy_seconds)))
    if peer is None:
        rows.append(("nginx PUT to disk", "not measured: nginx is not installed"))
    # CPU time is what a busy machine cannot hide: wall-clock speed follows it once the cores
    # are shared (the client, curl, needs its own share too).
    for target in targets:
        if target.pid is not None:
            cpu = statistics.median(target.cpu)
            rows.append(
                (
                    f"{target.name}: server CPU per upload (median)",
                    f"{cpu:.2f} s ({cpu / (size / 1e9):.2f} s/GB)",
                )
            )
    for target in targets:
        if target.pid is not None and target is not peer:
            rows.append(
                (
                    f"{target.name}: RSS idle / peak (growth)",
                    f"{target.idle_kib / 1024:,.0f} / {target.peak_kib / 1024:,.0f} MiB "
                    f"(+{(target.peak_kib - target.idle_kib) / 1024:,.0f})",
                )
            )
    print_metrics(rows)


if __name__ == "__main__":
    main()
