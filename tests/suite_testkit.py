"""The services as separate processes for cross-service tests: registry, deployer and gateway
on a fresh database and vhost, plus device agents on demand (used by the end-to-end story and
the CLI tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_JWT_SECRET,
    bearer,
    delete_device_logins,
    ensure_management_api,
    recreate_database,
    wait_for,
)

BIN = Path(sys.executable).parent
STEP_TIMEOUT_S = 120.0
MODEL_IMAGE = os.environ.get("MODELYARD_BASE_IMAGE", "modelyard/python-base:bookworm")


def openai_manifest(**env: str) -> dict[str, Any]:
    """Return the run manifest of tests/projects/openai_echo (an OpenAI-protocol server)."""
    return {
        "image": MODEL_IMAGE,
        "language": "python3",
        "main": "main.py",
        "port": 8080,
        "max_ram_mb": 128,
        "cores": 0.5,
        "health_path": "/healthz",
        "protocol": "openai",
        "env": env,
    }


@dataclass
class Agent:
    """One device: its registration and its agent process's local API."""

    name: str
    device_id: str
    url: str


@dataclass
class Suite:
    """The running services and what the story needs to reach them."""

    commands: Any
    tmp: Path
    env: dict[str, str]
    registry: str
    deployer: str
    gateway: str
    http: httpx.AsyncClient
    headers: dict[str, str] = field(default_factory=dict)
    processes: list[tuple[str, asyncio.subprocess.Process, Path]] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)

    async def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        """Start a service process with its output in `<tmp>/<name>.log`."""
        log_path = self.tmp / f"{name}.log"
        log = await asyncio.to_thread(log_path.open, "wb")
        with log:  # the child keeps its own descriptor
            process = await asyncio.create_subprocess_exec(
                *argv,
                env={**os.environ, **self.env, **env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append((name, process, log_path))

    async def wait_ready(self, name: str, url: str) -> None:
        """Wait until `url` answers 200; fail early if the process died."""
        _, process, log_path = next(p for p in self.processes if p[0] == name)

        async def ready() -> bool:
            if process.returncode is not None:
                output = await asyncio.to_thread(log_path.read_text, errors="replace")
                raise AssertionError(f"{name} exited:\n{output[-4000:]}")
            try:
                return (await self.http.get(url, timeout=2)).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(ready, timeout=60, interval=0.2)

    async def start_agent(
        self, name: str, labels: dict[str, str], env: dict[str, str] | None = None
    ) -> Agent:
        """Register a device with the deployer and run an agent for it (`env`: more settings)."""
        ingress_port = self.commands.free_port()
        created = await self.post(
            f"{self.deployer}/v1/devices",
            {
                "name": name,
                "labels": labels,
                "advertise_host": "127.0.0.1",
                "ingress_port": ingress_port,
            },
            status=201,
        )
        port = self.commands.free_port()
        await self.start(
            name,
            [str(BIN / "modelyard-agent"), "serve", "--port", str(port)],
            {
                "MODELYARD_AGENT_DEVICE_ID": created["id"],
                "MODELYARD_AGENT_TOKEN": created["token"],
                "MODELYARD_AGENT_DATA_DIR": str(self.tmp / name),
                "MODELYARD_AGENT_PORT": str(port),
                "MODELYARD_AGENT_ADVERTISE_HOST": "127.0.0.1",
                # No login in the broker URL: the agent logs in as its device.
                "MODELYARD_AGENT_AMQP_URL": self.env["MODELYARD_AMQP_URL"].replace(
                    "guest:guest@", ""
                ),
                "MODELYARD_AGENT_INGRESS_PORT": str(ingress_port),
                "MODELYARD_AGENT_HEARTBEAT_INTERVAL_S": "1",
                "MODELYARD_AGENT_RECONCILE_INTERVAL_S": "2",
                "MODELYARD_AGENT_HEALTH_TIMEOUT_S": "60",
                **(env or {}),
            },
        )
        agent = Agent(name=name, device_id=created["id"], url=f"http://127.0.0.1:{port}")
        self.agents.append(agent)
        await self.wait_ready(name, f"{agent.url}/healthz")
        return agent

    async def upload(
        self, model_id: str, project: str, manifest: dict[str, Any], title: str
    ) -> Any:
        """Upload a version of `project` (a folder of tests/projects) and return it."""
        data = await asyncio.to_thread(self.commands.project_zip, project)
        response = await self.http.post(
            f"{self.deployer}/v1/models/{model_id}/versions",
            headers=self.headers,
            data={"manifest": json.dumps(manifest), "title": title, "comment": "end-to-end"},
            files={"file": (f"{project}.zip", data, "application/zip")},
        )
        assert response.status_code == 201, response.text
        version = response.json()
        assert version["sha256"] == hashlib.sha256(data).hexdigest()
        assert version["size_bytes"] == len(data)
        return version

    async def wait_deployment(self, deployment_id: str, *, version_id: str) -> Any:
        """Wait until the deployment runs `version_id`; fail at once if it failed for good."""

        async def running() -> Any:
            deployment = await self.get(f"{self.deployer}/v1/deployments/{deployment_id}")
            if deployment["state"] in ("failed", "rolled_back") and (
                "retrying" not in deployment["state_message"]
            ):
                history = await self.get(f"{self.deployer}/v1/deployments/{deployment_id}/history")
                raise AssertionError(f"deployment {deployment['state']}: {history}")
            done = deployment["state"] == "running"
            return deployment if done and deployment["running_version_id"] == version_id else None

        return await wait_for(running, timeout=STEP_TIMEOUT_S, interval=0.5)

    async def post(self, url: str, body: dict[str, Any], *, status: int) -> Any:
        """POST JSON and return the answer, asserting its status."""
        response = await self.http.post(url, json=body, headers=self.headers)
        assert response.status_code == status, f"POST {url}: {response.text}"
        return response.json()

    async def get(self, url: str) -> Any:
        """GET and return the answer, asserting a 200."""
        response = await self.http.get(url, headers=self.headers)
        assert response.status_code == 200, f"GET {url}: {response.text}"
        return response.json()


S = TypeVar("S", bound=Suite)


@contextlib.asynccontextmanager
async def running_suite(
    commands: Any,
    tmp_path: Path,
    *,
    workspace: str,
    kind: type[S],
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[S]:
    """Yield registry, deployer and gateway running as processes on a fresh database/vhost."""
    name = f"modelyard_e2e_{uuid.uuid4().hex[:10]}"
    database_url = await recreate_database(TEST_ADMIN_DB_URL, name)
    await commands.run_command("rabbitmqctl", "-q", "add_vhost", name)
    await asyncio.to_thread(ensure_management_api)
    ports = {service: commands.free_port() for service in ("registry", "deployer", "gateway")}
    urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    env = {
        "MODELYARD_DATABASE_URL": database_url,
        "MODELYARD_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{name}",
        "MODELYARD_JWT_SECRET": TEST_JWT_SECRET,
        "MODELYARD_REGISTRY_URL": urls["registry"],
        "MODELYARD_DEPLOYER_URL": urls["deployer"],
        "MODELYARD_LOG_JSON": "false",
        "MODELYARD_OUTBOX_POLL_INTERVAL_S": "0.2",
        "MODELYARD_DEPLOYER_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "MODELYARD_GATEWAY_HEALTH_INTERVAL_S": "1",
        "MODELYARD_GATEWAY_CONFIG_REFRESH_S": "1",
        "MODELYARD_GATEWAY_STATE_REFRESH_S": "1",
        **(extra_env or {}),
    }
    async with httpx.AsyncClient(timeout=30) as http:
        suite = kind(
            commands=commands,
            tmp=tmp_path,
            env=env,
            registry=urls["registry"],
            deployer=urls["deployer"],
            gateway=urls["gateway"],
            http=http,
            headers=bearer("admin", workspace),
        )
        try:
            await commands.run_command(
                "rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"
            )
            await asyncio.gather(
                *(
                    commands.run_command(str(BIN / f"modelyard-{service}"), "migrate", env=env)
                    for service in ports
                )
            )
            for service, port in ports.items():
                argv = [str(BIN / f"modelyard-{service}"), "serve", "--port", str(port)]
                await suite.start(service, argv, {})
            for service, url in urls.items():
                await suite.wait_ready(service, f"{url}/readyz")
            yield suite
        finally:
            await asyncio.gather(*(commands.stop_process(p) for _, p, _ in suite.processes))
            for agent in suite.agents:
                await commands.docker_remove_labelled([f"io.modelyard.device={agent.device_id}"])
            for service, _, log_path in suite.processes:
                output = await asyncio.to_thread(log_path.read_text, errors="replace")
                tail = output.splitlines()[-25:]
                print(f"--- {service} (last lines of {log_path})", *tail, sep="\n")
            await asyncio.to_thread(delete_device_logins, name)
            await commands.run_command("rabbitmqctl", "-q", "delete_vhost", name, check=False)
            connection = await asyncpg.connect(asyncpg_dsn(TEST_ADMIN_DB_URL))
            try:
                database = database_url.rsplit("/", 1)[-1]  # the name plus any test suffix
                await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await connection.close()
