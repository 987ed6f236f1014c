"""`modelyard version push` against a raw curl upload of the same zip, and CLI start-up time.

Starts a real registry and deployer (uvicorn processes) on a fresh database and vhost, makes a
project of `--size-mb` MB (random weights, so nothing compresses), and times, each `--runs`
times (the best is shown, the machine is shared):

- `modelyard version push MODEL DIR`: zip the directory, then upload it (what a person runs);
- `modelyard version push MODEL project.zip`: the upload alone, through the SDK;
- `curl -F file=@project.zip ...`: the same multipart upload by a C client.

Then `modelyard --help` and `modelyard models --help` start-up (median of 15 runs) next to
`python -c pass`. Prints a table.

    .venv/bin/python clients/python/bench/bench_cli.py [--size-mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from modelyard_common.auth import issue_token
from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.bench import print_metrics
from modelyard_testkit.servers import free_port, wait_ready
from modelyard_testkit.testing import recreate_database

ADMIN_URL = os.environ.get(
    "MODELYARD_BENCH_ADMIN_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-secret-0123456789abcdef-0123456789"
WORKSPACE = "bench"
BIN = Path(sys.executable).parent
MiB = 1024 * 1024


def make_project(root: Path, size_mb: int) -> None:
    """Write a project directory: main.py, modelyard.yaml and `size_mb` MiB of weights."""
    root.mkdir()
    (root / "main.py").write_text("def predict(payload):\n    return payload\n")
    manifest = {
        "image": "modelyard/python-base:bookworm",
        "main": "main.py",
        "port": 8080,
        "protocol": "openai",
    }
    (root / "modelyard.yaml").write_text(json.dumps(manifest))
    with (root / "weights.bin").open("wb") as weights:
        for _ in range(size_mb):
            weights.write(os.urandom(MiB))


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Return the seconds `argv` takes (it must exit 0)."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... exited {done.returncode}: {done.stderr[-800:]}")
    return elapsed


def sdk_upload(urls: dict[str, str], token: str, model_id: str, archive: Path) -> float:
    """Return the seconds one upload takes through the SDK, in this process."""
    from modelyard_client import Endpoints, Modelyard
    from modelyard_client import operations as ops

    endpoints = Endpoints(registry_url=urls["registry"], deployer_url=urls["deployer"], token=token)
    manifest = {"image": "modelyard/python-base:bookworm", "main": "main.py", "protocol": "openai"}
    with Modelyard(endpoints, timeout=600) as my:
        started = time.perf_counter()
        my.send(ops.create_model_version(model_id, archive, manifest=manifest))
        return time.perf_counter() - started


def startup_ms(argv: list[str], runs: int = 15) -> str:
    """Return the median wall and CPU (user + system) time of `argv` in milliseconds.

    CPU time is what the command costs; wall time adds whatever else the machine runs.
    """
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    wall, cpu = statistics.median(walls) * 1000, statistics.median(cpus) * 1000
    return f"{wall:,.0f} ms wall, {cpu:,.0f} ms CPU"


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cli-bench-", dir=os.environ.get("BENCH_DIR")))
    name = f"modelyard_bench_cli_{uuid.uuid4().hex[:8]}"
    database_url = asyncio.run(recreate_database(ADMIN_URL, name))
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], check=True
    )
    ports = {"registry": free_port(), "deployer": free_port()}
    urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    env = {
        **os.environ,
        "MODELYARD_DATABASE_URL": database_url,
        "MODELYARD_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{name}",
        "MODELYARD_JWT_SECRET": SECRET,
        "MODELYARD_REGISTRY_URL": urls["registry"],
        "MODELYARD_DEPLOYER_URL": urls["deployer"],
        "MODELYARD_DEPLOYER_ARTIFACT_DIR": str(work / "artifacts"),
        "MODELYARD_LOG_LEVEL": "WARNING",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for service, port in ports.items():
            subprocess.run([str(BIN / f"modelyard-{service}"), "migrate"], env=env, check=True)
            processes.append(
                subprocess.Popen(
                    [str(BIN / f"modelyard-{service}"), "serve", "--port", str(port)], env=env
                )
            )
        for process, url in zip(processes, urls.values(), strict=True):
            wait_ready(f"{url}/readyz", process)
        token = issue_token(secret=SECRET, sub="bench", roles=["admin"], workspace=WORKSPACE)
        auth = {"Authorization": f"Bearer {token}"}
        model = httpx.post(
            f"{urls['registry']}/v1/models",
            json={"name": "bench-model", "learning_type": "supervised"},
            headers=auth,
        ).json()
        project = work / "project"
        make_project(project, args.size_mb)
        archive = work / "project.zip"
        cli_env = {
            **env,
            "MODELYARD_CONFIG": str(work / "config.yaml"),
            "MODELYARD_TOKEN": token,
            "MODELYARD_GATEWAY_URL": "http://127.0.0.1:9",
        }
        cli = str(BIN / "modelyard")
        subprocess.run(
            [sys.executable, "-c", "import sys, modelyard_cli.project as p; "
             "from pathlib import Path; p.zip_project(Path(sys.argv[1]), Path(sys.argv[2]))",
             str(project), str(archive)],
            check=True,
        )  # fmt: skip
        size_mb = archive.stat().st_size / 1e6
        manifest = (project / "modelyard.yaml").read_text()
        curl = [
            # No `Expect: 100-continue` (curl would wait a second for a 100 that uvicorn never
            # sends, and the SDK does not ask for it either).
            "curl", "-sS", "--fail", "-o", "/dev/null", "-H", "Expect:",
            "-H", f"Authorization: Bearer {token}",
            "-F", f"file=@{archive}", "--form-string", f"manifest={manifest}",
            f"{urls['deployer']}/v1/models/{model['id']}/versions",
        ]  # fmt: skip
        # Interleaved rounds, best of each: the machine is shared, so no kind gets the quiet spell.
        times: dict[str, list[float]] = {"dir": [], "zip": [], "curl": [], "sdk": []}
        for _ in range(args.runs):
            times["curl"].append(timed(curl, env))
            times["zip"].append(
                timed([cli, "version", "push", model["id"], str(archive), "-q"], cli_env)
            )
            times["dir"].append(
                timed([cli, "version", "push", model["id"], str(project), "-q"], cli_env)
            )
            times["sdk"].append(sdk_upload(urls, token, model["id"], archive))
        raw, push_zip, push_dir, sdk = (min(times[k]) for k in ("curl", "zip", "dir", "sdk"))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False)
        shutil.rmtree(work, ignore_errors=True)

        async def drop() -> None:
            import asyncpg

            connection = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()

        asyncio.run(drop())

    python_ms = startup_ms([sys.executable, "-c", "pass"])
    help_ms = startup_ms([cli, "--help"])
    group_help_ms = startup_ms([cli, "models", "--help"])

    def rate(seconds: float) -> str:
        return f"{seconds:.2f} s  {size_mb / seconds:,.1f} MB/s"

    rows = [
        ("project zip size", f"{size_mb:,.1f} MB"),
        ("curl -F upload of the zip (raw)", rate(raw)),
        ("SDK upload alone (Modelyard.send, in process)", rate(sdk)),
        ("modelyard version push ZIP (CLI: start, look-up, upload)", rate(push_zip)),
        ("modelyard version push DIR (zip + upload)", rate(push_dir)),
        ("SDK upload / curl (time)", f"{sdk / raw:.2f}x"),
        ("push ZIP / curl (time)", f"{push_zip / raw:.2f}x"),
        ("push DIR / curl (time)", f"{push_dir / raw:.2f}x"),
        ("python -c pass (interpreter floor)", python_ms),
        ("modelyard --help", help_ms),
        ("modelyard models --help", group_help_ms),
    ]
    print_metrics(rows, f"value (best of {args.runs} uploads; median of 15 start-ups)")


if __name__ == "__main__":
    main()
