"""Time from deploy command to first successful handler call, next to plain `docker run`.

Usage: python services/device-agent/bench/bench_deploy.py [--runs N]

Needs what the tests need: Docker (scripts/ensure-docker.sh), the base image
(scripts/ensure-base-image.sh) and RabbitMQ on 127.0.0.1:5672 (vhost `modelyard_test`).

* agent: publish a DeviceCommand on the real broker to an in-process agent; the clock stops at the
  first 200 from `POST /models/{model}/predict` on the agent's local API. Includes download,
  SHA-256 check, safe extraction, container start, health wait and the proxy hop.
* docker run: the same project already unpacked on disk, the same image and handler wrapper,
  started with the `docker run` CLI; the clock stops at the first 200 from the container itself.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from uuid import uuid4

import httpx
from modelyard_testkit.agent import (
    ArtifactServer,
    BrokerProbe,
    delete_device_queues,
    project_manifest,
    version_spec,
    zip_project,
)
from modelyard_testkit.testing import ensure_vhost

from modelyard_agent.app import Agent, create_app
from modelyard_agent.containers.labels import LABEL_DEVICE
from modelyard_agent.containers.specs import free_loopback_port
from modelyard_agent.settings import AgentSettings
from modelyard_agent.workloads.naming import PROJECT_MOUNT, WRAPPER_MOUNT

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PROJECT = HERE.parent / "tests" / "projects" / "handlers_echo"
WRAPPER = HERE.parent / "src" / "modelyard_agent" / "runtime" / "modelyard_handlers.py"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/modelyard_test"
TOKEN = "bench-device-token"
POLL_S = 0.02


async def first_success(client: httpx.AsyncClient, url: str, timeout_s: float = 120.0) -> None:
    """Return once `POST url` answers 200, polling every POLL_S."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            response = await client.post(url, json={"bench": True})
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{url} never answered 200")


async def bench_agent(runs: int, workdir: Path) -> list[float]:
    """Return the seconds from deploy command to first handler answer, per run."""
    server = ArtifactServer(token=TOKEN)
    server.start()
    probe = BrokerProbe(AMQP_URL)
    await probe.start()
    device_id = uuid4()
    settings = AgentSettings(
        device_id=device_id,
        token=TOKEN,
        data_dir=workdir / "agent",
        amqp_url=AMQP_URL,
        health_interval_s=POLL_S,
        disk_margin_mb=0,
        log_json=False,
    )
    agent = Agent(settings)
    await agent.start()
    await asyncio.wait_for(agent.consuming.wait(), timeout=30)
    timings: list[float] = []
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(agent)), base_url="http://agent.local"
        ) as client:
            for _ in range(runs):
                model_name = f"bench-{uuid4().hex[:6]}"
                version = version_spec(
                    server,
                    zip_project(PROJECT),
                    project_manifest(main="echo_model.py", handlers=[{"name": "predict"}]),
                    model_name=model_name,
                    model_id=uuid4(),
                    number=1,
                )
                started = time.perf_counter()
                await probe.send(
                    device_id=device_id, deployment_id=uuid4(), generation=1, version=version
                )
                await first_success(client, f"/models/{model_name}/predict")
                timings.append(time.perf_counter() - started)
    finally:
        await agent.stop()
        await delete_device_queues(AMQP_URL, {device_id})
        await probe.close()
        server.stop()
        await asyncio.to_thread(remove_device_containers, str(device_id))
    return timings


async def bench_docker_run(runs: int, workdir: Path) -> list[float]:
    """Return the seconds from `docker run` to first handler answer, per run."""
    project = workdir / "plain-project"
    with zipfile.ZipFile(_zip_file(workdir)) as archive:
        archive.extractall(project)
    timings: list[float] = []
    async with httpx.AsyncClient() as client:
        for _ in range(runs):
            port = free_loopback_port()
            name = f"modelyard-bench-{uuid4().hex[:8]}"
            command = [
                "docker", "run", "-d", "--rm", "--init", "--name", name,
                "-p", f"127.0.0.1:{port}:8080",
                "-v", f"{project}:{PROJECT_MOUNT}:ro",
                "-v", f"{WRAPPER}:{WRAPPER_MOUNT}:ro",
                "-w", PROJECT_MOUNT,
                "-e", f"MODELYARD_PROJECT_DIR={PROJECT_MOUNT}",
                "-e", "MODELYARD_MAIN=echo_model.py",
                "-e", "MODELYARD_HANDLERS=predict",
                "-e", "PORT=8080",
                "-m", "128m", "--cpus", "0.5",
                "modelyard/python-base:bookworm", "python3", WRAPPER_MOUNT,
            ]  # fmt: skip
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.DEVNULL
            )
            await process.wait()
            try:
                await first_success(client, f"http://127.0.0.1:{port}/predict")
                timings.append(time.perf_counter() - started)
            finally:
                remover = await asyncio.create_subprocess_exec(
                    "docker", "rm", "-f", name, stdout=asyncio.subprocess.DEVNULL
                )
                await remover.wait()
    return timings


def remove_device_containers(device_id: str) -> None:
    """Remove the containers the benchmark's agent left."""
    subprocess.run(
        f"docker ps -aq --filter label={LABEL_DEVICE}={device_id} | xargs -r docker rm -f",
        shell=True,
        check=False,
        capture_output=True,
    )


def prepare() -> None:
    """Start Docker, build the base image and create the broker vhost if needed."""
    for script in ("ensure-docker.sh", "ensure-base-image.sh"):
        subprocess.run(["bash", str(REPO / "scripts" / script)], check=True)
    ensure_vhost("modelyard_test")


def _zip_file(workdir: Path) -> Path:
    path = workdir / "project.zip"
    path.write_bytes(zip_project(PROJECT))
    return path


def row(label: str, timings: list[float]) -> str:
    """Return one table row: runs, median, min, max in seconds."""
    return (
        f"| {label:<28} | {len(timings):>4} | {statistics.median(timings):>8.3f} "
        f"| {min(timings):>8.3f} | {max(timings):>8.3f} |"
    )


async def main(runs: int) -> None:
    """Run both scenarios and print the comparison table."""
    await asyncio.to_thread(prepare)
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as tmp:
        workdir = Path(tmp)
        plain = await bench_docker_run(runs, workdir)
        agent = await bench_agent(runs, workdir)
    ratio = statistics.median(agent) / statistics.median(plain)
    print()
    print("Deploy to first successful handler call (seconds, small handlers project)")
    print("| scenario                     | runs |   median |      min |      max |")
    print("|------------------------------|------|----------|----------|----------|")
    print(row("plain docker run + call", plain))
    print(row("agent: command -> local API", agent))
    print(f"\nratio agent / docker run (medians): {ratio:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
    sys.exit(0)
