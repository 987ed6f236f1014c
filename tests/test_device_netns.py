"""A device on a network host of its own: the gateway reaches its model only through the ingress.

Linux network namespaces made (and removed) by the test: the platform's gateway runs in a
namespace of its own, joined to the root namespace by a veth pair, so it cannot reach the
device's loopback, where the model containers are published. (The device is the root namespace
because the Docker engine that runs its containers lives there.) Traffic goes only to loopback
and to those two veth addresses; the gateway reaches PostgreSQL and RabbitMQ through forwarders
on the veth address.

The story: a provisioning token, `modelyard-agent register` on the device, the agent started
from the config it wrote (no platform secret in its environment), a deployment answered through
the gateway in the other namespace, the ingress refusing a call without the device's
credential, a group bound after the deployment is running serving it, and the device's data dir
wiped and the deployment converging back. The deploy-to-first-answer time is measured through
the namespaced gateway and through a replica of it on the device's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import stat
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from openai import AsyncOpenAI

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

pytestmark = [pytest.mark.docker, pytest.mark.end_to_end]

BIN = Path(sys.executable).parent
PROJECTS = Path(__file__).parent / "projects"
MODEL_IMAGE = os.environ.get("MODELYARD_BASE_IMAGE", "modelyard/python-base:bookworm")
WORKSPACE = "netns"
STEP_TIMEOUT_S = 120.0


class Forwarder:
    """A TCP forwarder from the veth address to a service on the root namespace's loopback."""

    def __init__(self, listen_host: str, target_port: int) -> None:
        self.listen_host = listen_host
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Forwarder:
        self._server = await asyncio.start_server(self._serve, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        for task in (
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass
class Story:
    """The namespace, the running processes and how to reach them."""

    commands: Any
    tmp: Path
    ns: str
    host_ip: str
    ns_ip: str
    env: dict[str, str]
    http: httpx.AsyncClient
    urls: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=lambda: bearer("admin", WORKSPACE))
    processes: dict[str, tuple[asyncio.subprocess.Process, Path]] = field(default_factory=dict)
    device_id: str = ""

    async def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log_path = self.tmp / f"{name}.log"
        log = await asyncio.to_thread(log_path.open, "ab")
        with log:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = (process, log_path)

    async def stop(self, name: str) -> None:
        process, _ = self.processes[name]
        await self.commands.stop_process(process)

    async def wait_ready(self, name: str, url: str) -> None:
        process, log_path = self.processes[name]

        async def ready() -> bool:
            if process.returncode is not None:
                output = await asyncio.to_thread(log_path.read_text, errors="replace")
                raise AssertionError(f"{name} exited:\n{output[-4000:]}")
            try:
                return (await self.http.get(url, timeout=2)).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(ready, timeout=60, interval=0.2)

    async def call(self, method: str, url: str, *, status: int, **kwargs: Any) -> Any:
        response = await self.http.request(method, url, headers=self.headers, **kwargs)
        assert response.status_code == status, f"{method} {url}: {response.text}"
        return response.json() if response.content else None

    async def in_ns(self, *argv: str) -> tuple[int, str]:
        result: tuple[int, str] = await self.commands.run_command(
            "ip", "netns", "exec", self.ns, *argv, check=False, timeout=30
        )
        return result


OPENAI_MANIFEST = {
    "image": MODEL_IMAGE,
    "language": "python3",
    "main": "main.py",
    "port": 8080,
    "max_ram_mb": 128,
    "cores": 0.5,
    "health_path": "/healthz",
    "protocol": "openai",
    "env": {"REPLY_PREFIX": "edge"},
}


def platform_free_env() -> dict[str, str]:
    """Return the test process's environment without any MODELYARD_ setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}


@pytest.fixture
async def story(commands: Any, tmp_path: Path) -> AsyncIterator[Story]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (CI runs as root)")
    suffix = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"myns{suffix}", f"myh{suffix}", f"myn{suffix}"
    net = random.randint(1, 254)
    host_ip, ns_ip = f"10.231.{net}.1", f"10.231.{net}.2"
    name = f"modelyard_netns_{suffix}"
    forwarders: list[Forwarder] = []
    run = commands.run_command
    await run("ip", "netns", "add", ns)
    try:
        await run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        await run("ip", "link", "set", ns_if, "netns", ns)
        await run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        await run("ip", "link", "set", host_if, "up")
        await run("ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        await run("ip", "-n", ns, "link", "set", ns_if, "up")
        await run("ip", "-n", ns, "link", "set", "lo", "up")
        database_url = await recreate_database(TEST_ADMIN_DB_URL, name)
        await run("rabbitmqctl", "-q", "add_vhost", name)
        await run("rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        await asyncio.to_thread(ensure_management_api)
        # The server the test kit uses (MODELYARD_TEST_ADMIN_DATABASE_URL may name another port).
        pg_port = urlsplit(database_url).port or 5432
        pg = await Forwarder(host_ip, pg_port).start()
        amqp = await Forwarder(host_ip, 5672).start()
        forwarders += [pg, amqp]
        ports = {s: commands.free_port() for s in ("registry", "deployer", "gateway", "replica")}
        urls = {
            "registry": f"http://127.0.0.1:{ports['registry']}",
            "deployer": f"http://{host_ip}:{ports['deployer']}",
            "gateway": f"http://{ns_ip}:{ports['gateway']}",
            "replica": f"http://127.0.0.1:{ports['replica']}",
        }
        env = {
            **platform_free_env(),
            "MODELYARD_ENV": "dev",  # the platform signs HS256 test tokens
            # This story is about network trust; the policy gate has its own (test_policy_gate).
            "MODELYARD_POLICY_DEFAULT_GATE": "off",
            "MODELYARD_DATABASE_URL": database_url,
            "MODELYARD_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{name}",
            "MODELYARD_JWT_SECRET": TEST_JWT_SECRET,
            "MODELYARD_REGISTRY_URL": urls["registry"],
            "MODELYARD_DEPLOYER_URL": urls["deployer"],
            "MODELYARD_LOG_JSON": "false",
            "MODELYARD_OUTBOX_POLL_INTERVAL_S": "0.2",
            "MODELYARD_DEPLOYER_ARTIFACT_DIR": str(tmp_path / "artifacts"),
            "MODELYARD_DEPLOYER_DEVICE_BROKER_URL": f"amqp://127.0.0.1:5672/{name}",
            "MODELYARD_GATEWAY_HEALTH_INTERVAL_S": "1",
            "MODELYARD_GATEWAY_CONFIG_REFRESH_S": "1",
            "MODELYARD_GATEWAY_STATE_REFRESH_S": "1",
        }
        async with httpx.AsyncClient(timeout=30) as http:
            story = Story(commands, tmp_path, ns, host_ip, ns_ip, env, http, urls)
            try:
                for service in ("registry", "deployer", "gateway"):
                    await run(str(BIN / f"modelyard-{service}"), "migrate", env=env)
                await story.start(
                    "registry",
                    [str(BIN / "modelyard-registry"), "serve", "--port", str(ports["registry"])],
                    env,
                )
                await story.start(
                    "deployer",
                    [
                        str(BIN / "modelyard-deployer"),
                        "serve",
                        "--host",
                        host_ip,
                        "--port",
                        str(ports["deployer"]),
                    ],
                    env,
                )
                # The gateway in its own namespace: PostgreSQL and RabbitMQ through forwarders.
                ns_env = {
                    **env,
                    "MODELYARD_DATABASE_URL": database_url.replace(
                        f"127.0.0.1:{pg_port}", f"{host_ip}:{pg.port}"
                    ),
                    "MODELYARD_AMQP_URL": f"amqp://guest:guest@{host_ip}:{amqp.port}/{name}",
                }
                await story.start(
                    "gateway",
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        str(BIN / "modelyard-gateway"),
                        "serve",
                        "--host",
                        ns_ip,
                        "--port",
                        str(ports["gateway"]),
                    ],
                    ns_env,
                )
                # A replica of it on the device's host, for the one-host comparison.
                await story.start(
                    "replica",
                    [
                        str(BIN / "modelyard-gateway"),
                        "serve",
                        "--port",
                        str(ports["replica"]),
                    ],
                    env,
                )
                for service, url in urls.items():
                    await story.wait_ready(service, f"{url}/readyz")
                yield story
            finally:
                await asyncio.gather(
                    *(commands.stop_process(p) for p, _ in story.processes.values())
                )
                if story.device_id:
                    await commands.docker_remove_labelled(
                        [f"io.modelyard.device={story.device_id}"]
                    )
                for service, (_, log_path) in story.processes.items():
                    output = await asyncio.to_thread(log_path.read_text, errors="replace")
                    print(f"--- {service} ({log_path})", *output.splitlines()[-20:], sep="\n")
    finally:
        for forwarder in forwarders:
            await forwarder.stop()
        await run("ip", "netns", "del", ns, check=False)
        await run("ip", "link", "del", host_if, check=False)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(delete_device_logins, name)
        await run("rabbitmqctl", "-q", "delete_vhost", name, check=False)
        with contextlib.suppress(Exception):
            connection = await asyncpg.connect(asyncpg_dsn(TEST_ADMIN_DB_URL))
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        values[key] = value
    return values


@pytest.mark.timeout(900)
async def test_device_on_its_own_network_host_answers_through_the_gateway_only_via_ingress(
    story: Story,
) -> None:
    deployer, gateway, replica = (
        story.urls["deployer"],
        story.urls["gateway"],
        story.urls["replica"],
    )
    suffix = uuid.uuid4().hex[:6]

    # The gateway cannot reach the deployer's loopback-only registry: it is another host.
    code, _ = await story.in_ns(
        sys.executable,
        "-c",
        f"import socket; socket.create_connection(('127.0.0.1', "
        f"{story.urls['registry'].rsplit(':', 1)[1]}), 2)",
    )
    assert code != 0

    model = await story.call(
        "POST",
        f"{story.urls['registry']}/v1/models",
        status=201,
        json={"name": f"edge-chat-{suffix}", "learning_type": "supervised"},
    )
    version = await story.call(
        "POST",
        f"{deployer}/v1/models/{model['id']}/versions",
        status=201,
        data={"manifest": json.dumps(OPENAI_MANIFEST), "title": "edge", "comment": "netns"},
        files={
            "file": (
                "openai_echo.zip",
                story.commands.project_zip("openai_echo"),
                "application/zip",
            )
        },
    )

    # -- onboarding in one command, on the device ---------------------------------------------
    provisioning = await story.call(
        "POST",
        f"{deployer}/v1/provisioning-tokens",
        status=201,
        json={"name": "netns", "max_uses": 1, "labels": {"site": "edge"}},
    )
    config = story.tmp / "etc" / "agent.env"
    ingress_port = story.commands.free_port()
    _, printed = await story.commands.run_command(
        str(BIN / "modelyard-agent"),
        "register",
        "--deployer",
        deployer,
        "--provisioning-token",
        provisioning["token"],
        "--name",
        f"edge-{suffix}",
        # The token's labels, repeated: a device may not add or change any (issue 18).
        "--label",
        "site=edge",
        "--advertise-host",
        story.host_ip,
        "--ingress-port",
        str(ingress_port),
        "--data-dir",
        str(story.tmp / "data"),
        "--config",
        str(config),
        env=platform_free_env(),
    )
    assert "modelyard-agent serve" in printed
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    registered = read_env_file(config)
    story.device_id = registered["MODELYARD_AGENT_DEVICE_ID"]
    assert TEST_JWT_SECRET not in config.read_text()
    assert "DATABASE" not in config.read_text()
    again = await story.commands.run_command(
        str(BIN / "modelyard-agent"),
        "register",
        "--deployer",
        deployer,
        "--provisioning-token",
        provisioning["token"],
        "--config",
        str(story.tmp / "second.env"),
        env=platform_free_env(),
        check=False,
    )
    assert again[0] != 0
    assert "registration refused (403)" in again[1]

    agent_port = story.commands.free_port()
    agent_env = {
        **platform_free_env(),
        **registered,
        "MODELYARD_AGENT_PORT": str(agent_port),
        "MODELYARD_AGENT_HEARTBEAT_INTERVAL_S": "1",
        "MODELYARD_AGENT_RECONCILE_INTERVAL_S": "2",
        "MODELYARD_AGENT_HEALTH_TIMEOUT_S": "60",
        "MODELYARD_LOG_JSON": "false",
    }
    agent_argv = [str(BIN / "modelyard-agent"), "serve", "--port", str(agent_port)]
    await story.start("agent", agent_argv, agent_env)
    await story.wait_ready("agent", f"http://127.0.0.1:{agent_port}/readyz")
    device = await story.call("GET", f"{deployer}/v1/devices/{story.device_id}", status=200)
    assert device["labels"] == {"site": "edge"}
    assert (device["advertise_host"], device["ingress_port"]) == (story.host_ip, ingress_port)

    # -- a group bound before, a deployment, the first answer on each side ---------------------
    early = await story.call(
        "POST",
        f"{gateway}/v1/groups",
        status=201,
        json={"name": f"early-{suffix}", "registry_model_id": model["id"]},
    )
    key = await story.call(
        "POST",
        f"{gateway}/v1/keys",
        status=201,
        json={"name": "netns", "groups": [early["name"]]},
    )
    clients = {
        side: AsyncOpenAI(base_url=f"{url}/v1", api_key=key["key"], max_retries=0, timeout=30)
        for side, url in (
            ("namespaced gateway", gateway),
            ("gateway on the device's host", replica),
        )
    }

    async def answer(side: str, group: str) -> tuple[str, str] | None:
        try:
            raw = await clients[side].chat.completions.with_raw_response.create(
                model=group, messages=[{"role": "user", "content": "hello"}]
            )
        except Exception:
            return None
        return raw.parse().choices[0].message.content or "", raw.headers["x-modelyard-instance"]

    started = time.monotonic()
    batch = await story.call(
        "POST",
        f"{deployer}/v1/deployments",
        status=201,
        json={"version_id": version["id"], "device_ids": [story.device_id]},
    )
    (deployment,) = batch["items"]
    first: dict[str, float] = {}

    async def first_answers() -> bool:
        for side in clients:
            if side not in first and await answer(side, early["name"]):
                first[side] = time.monotonic() - started
        return len(first) == len(clients)

    await wait_for(first_answers, timeout=STEP_TIMEOUT_S, interval=0.1)
    print("\n| path | deploy command -> first answer (s) |\n|---|---|")
    for side, seconds in first.items():
        print(f"| {side} | {seconds:.2f} |")
    result = await answer("namespaced gateway", early["name"])
    assert result == ("edge: hello", f"deployment-{deployment['id']}")
    current = await story.call("GET", f"{deployer}/v1/deployments/{deployment['id']}", status=200)
    assert current["base_url"] == (
        f"http://{story.host_ip}:{ingress_port}/deployments/{deployment['id']}"
    )

    # -- the container is on the device's loopback only; the ingress wants its credential ------
    _, port_text = await story.commands.run_command(
        "docker",
        "ps",
        "--filter",
        f"label=io.modelyard.deployment={deployment['id']}",
        "--format",
        "{{.Ports}}",
    )
    assert "127.0.0.1:" in port_text, port_text
    host_port = int(port_text.split("127.0.0.1:", 1)[1].split("-", 1)[0])
    for target in ("127.0.0.1", story.host_ip):
        code, _ = await story.in_ns(
            sys.executable,
            "-c",
            f"import socket; socket.create_connection(('{target}', {host_port}), 2)",
        )
        assert code != 0, f"the namespace reached the model container at {target}:{host_port}"
    ingress = f"http://{story.host_ip}:{ingress_port}/deployments/{deployment['id']}"
    chat = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
    for headers in ({}, {"Authorization": "Bearer myin_forged"}):
        refused = await story.http.post(
            f"{ingress}/v1/chat/completions", json=chat, headers=headers
        )
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    code, out = await story.in_ns(
        sys.executable,
        "-c",
        "import urllib.request, urllib.error\n"
        f"try:\n urllib.request.urlopen('{ingress}/v1/models', timeout=5)\n"
        "except urllib.error.HTTPError as e:\n print(e.code)",
    )
    assert out.strip() == "401"

    # -- a group bound after the deployment runs serves it at once -----------------------------
    await story.call(
        "POST",
        f"{gateway}/v1/groups",
        status=201,
        json={"name": f"late-{suffix}", "registry_model_id": model["id"]},
    )
    late_started = time.monotonic()
    late_key = await story.call(
        "POST",
        f"{gateway}/v1/keys",
        status=201,
        json={"name": "late", "groups": [f"late-{suffix}"]},
    )
    clients["late"] = AsyncOpenAI(
        base_url=f"{gateway}/v1", api_key=late_key["key"], max_retries=0, timeout=30
    )

    async def late_answers() -> tuple[str, str] | None:
        return await answer("late", f"late-{suffix}")

    assert await wait_for(late_answers, timeout=30, interval=0.1) == (
        "edge: hello",
        f"deployment-{deployment['id']}",
    )
    print(f"| group bound after running -> first answer | {time.monotonic() - late_started:.2f} |")

    # -- the device loses its data dir: it converges back, with history ------------------------
    await story.stop("agent")
    await asyncio.to_thread(shutil.rmtree, story.tmp / "data")
    await story.start("agent", agent_argv, agent_env)
    await story.wait_ready("agent", f"http://127.0.0.1:{agent_port}/readyz")

    async def converged() -> bool:
        history = await story.call(
            "GET", f"{deployer}/v1/deployments/{deployment['id']}/history", status=200
        )
        resynced = [e for e in history["items"] if "new agent epoch" in e["message"]]
        if not resynced:
            return False
        after = [e for e in history["items"] if e["id"] > resynced[-1]["id"]]
        return any(e["source"] == "agent" and e["state"] == "running" for e in after)

    await wait_for(converged, timeout=STEP_TIMEOUT_S, interval=0.5)
    current = await story.call("GET", f"{deployer}/v1/deployments/{deployment['id']}", status=200)
    assert current["state"] == "running"
    assert await wait_for(lambda: answer("namespaced gateway", early["name"]), timeout=60)
    for client in clients.values():
        await client.close()
