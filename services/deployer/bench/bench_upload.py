"""Upload throughput and memory of the deployer, against a raw file copy on the same disk.

Starts a real deployer (`modelyard-deployer serve`, a uvicorn process) on a fresh database,
uploads a zip of incompressible random data (stored uncompressed, so the ratio check passes)
and prints a table: MB/s of the upload vs `shutil.copyfile` + fsync on the disk the artifact
store uses, and the deployer's resident memory before and at its peak during the upload.

    .venv/bin/python services/deployer/bench/bench_upload.py [--size-mb 200]

Needs Postgres and RabbitMQ as the tests do (MODELYARD_BENCH_ADMIN_DATABASE_URL,
MODELYARD_BENCH_AMQP_URL override the local defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from modelyard_testkit.bench import print_metrics
from modelyard_testkit.servers import free_port, wait_ready
from modelyard_testkit.testing import recreate_database

from modelyard_common.auth import issue_token
from modelyard_common.outbox import asyncpg_dsn

ADMIN_URL = os.environ.get(
    "MODELYARD_BENCH_ADMIN_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("MODELYARD_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SECRET = "bench-secret-0123456789abcdef-0123456789"
WORKSPACE = "bench"
MiB = 1024 * 1024


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


def post_file(url: str, path: Path, fields: dict[str, str], headers: dict[str, str]) -> float:
    """POST `path` as the multipart `file` part; return the seconds taken (201 required).

    curl is used when present: a C client keeps the measurement about the server, not about
    the client's own Python overhead.
    """
    started = time.perf_counter()
    if shutil.which("curl"):
        command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-F", f"file=@{path}"]
        for name, value in fields.items():
            command += ["--form-string", f"{name}={value}"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        status = subprocess.run([*command, url], capture_output=True, text=True, check=True)
        code = int(status.stdout.strip() or 0)
    else:
        with path.open("rb") as upload:
            response = httpx.post(
                url,
                files={"file": ("project.zip", upload, "application/zip")},
                data=fields,
                headers=headers,
                timeout=600,
            )
        code = response.status_code
    elapsed = time.perf_counter() - started
    if code != 201:
        raise SystemExit(f"upload to {url} answered {code}")
    return elapsed


def http_ceiling_seconds(path: Path) -> float:
    """Return how long the same upload takes to a no-op app under uvicorn."""
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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        return post_file(f"http://127.0.0.1:{port}/", path, {}, {})
    finally:
        process.terminate()
        process.wait(timeout=30)


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


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="deployer-bench-", dir=os.environ.get("BENCH_DIR")))
    artifacts = workdir / "artifacts"
    artifacts.mkdir()
    zip_path = workdir / "project.zip"
    make_zip(zip_path, args.size_mb)
    size = zip_path.stat().st_size
    model_id = str(uuid.uuid4())
    database_url = asyncio.run(recreate_database(ADMIN_URL, "modelyard_bench_deployer"))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with running_deployer(
        port,
        model_id=model_id,
        database_url=database_url,
        amqp_url=AMQP_URL,
        artifacts=artifacts,
        queue_prefix=f"deployer-bench-{model_id[:8]}",
        consume_events="false",
    ) as process:
        token = issue_token(
            secret=SECRET,
            sub="bench",
            roles=["admin"],
            workspace=WORKSPACE,
            ttl=timedelta(hours=1),
        )
        idle = memory_kib(process.pid)
        manifest = json.dumps(
            {
                "image": "modelyard/python-base:bookworm",
                "main": "main.py",
                "handlers": [{"name": "predict"}],
            }
        )
        with RssSampler(process.pid) as sampler:
            upload_s = post_file(
                f"{base_url}/v1/models/{model_id}/versions",
                zip_path,
                {"manifest": manifest, "title": "bench"},
                {"Authorization": f"Bearer {token}"},
            )
        after = memory_kib(process.pid)
    copy_s = raw_copy_seconds(zip_path, artifacts)
    ceiling_s = http_ceiling_seconds(zip_path)
    shutil.rmtree(workdir, ignore_errors=True)
    asyncio.run(drop_database("modelyard_bench_deployer"))

    mb = size / 1e6
    rows = [
        ("zip size", f"{mb:,.1f} MB"),
        ("upload to deployer (HTTP, hash, zip check, fsync)", f"{mb / upload_s:,.1f} MB/s"),
        ("raw file copy on the same disk (+ fsync)", f"{mb / copy_s:,.1f} MB/s"),
        ("same upload to a no-op app under uvicorn", f"{mb / ceiling_s:,.1f} MB/s"),
        ("upload / raw copy", f"{copy_s / upload_s:.0%}"),
        ("upload / no-op app (the HTTP stack's ceiling)", f"{ceiling_s / upload_s:.0%}"),
        ("deployer RSS before upload", f"{idle['VmRSS'] / 1024:,.1f} MiB"),
        ("deployer peak RSS during upload (sampled)", f"{sampler.peak_kib / 1024:,.1f} MiB"),
        ("deployer peak RSS of the process (VmHWM)", f"{after['VmHWM'] / 1024:,.1f} MiB"),
    ]
    print_metrics(rows)


if __name__ == "__main__":
    main()
