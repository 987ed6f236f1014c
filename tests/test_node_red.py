"""The Node-RED nodes (clients/node-red) in a real Node-RED runtime against the real services.

Registry, deployer and gateway run as processes (suite_testkit), with a device agent running
handlers projects in Docker. The node tests (`node --test`, node-red-node-test-helper with
Node-RED's own runtime) are run from here as subprocesses, told the URLs, names and keys in
environment variables; they write what they counted into a JSON file this test asserts on.

The device model node: JSON and image input through the agent's local API, the editor's
drop-down endpoint, a redeploy of a new version while the flow keeps answering (no failed
message), and a stopped model raising to a catch node. The gateway chat node: plain and
streamed answers from a group of two fake OpenAI backends (processes) through the gateway (a
process of its own), a failover when the serving one is killed with SIGKILL, 404 and 503 (none
left) raised to a catch node with their reason. The example flows deploy in the runtime.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import struct
import sys
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from node_red_kit import ensure_node_modules, node_test  # tests/ on path
from suite_testkit import MODEL_IMAGE, STEP_TIMEOUT_S, Suite, running_suite

from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_DB_SUFFIX,
    TEST_JWT_SECRET,
    bearer,
    recreate_database,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent
FAKE_OPENAI = REPO / "tests" / "chaos" / "fake_openai.py"
WORKSPACE = "node-red"

pytestmark = [
    pytest.mark.docker,
    pytest.mark.end_to_end,
    pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm"),
]


def handlers_manifest(input_type: str, handlers: list[str], **env: str) -> dict[str, Any]:
    """Return the run manifest of a handlers-protocol test project."""
    return {
        "image": MODEL_IMAGE,
        "language": "python3",
        "main": "main.py",
        "handlers": [{"name": name} for name in handlers],
        "input_type": input_type,
        "port": 8080,
        "max_ram_mb": 128,
        "cores": 0.5,
        "health_path": "/healthz",
        "protocol": "handlers",
        "env": env,
    }


def png(width: int, height: int) -> bytes:
    """Return a grey PNG image of `width` x `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + bytes((x * 7 + y * 13) % 256 for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
async def node_modules(commands: Any) -> Path:
    """Return clients/node-red with its pinned dependencies installed."""
    return await ensure_node_modules(commands)


@pytest.fixture
async def suite(commands: Any, tmp_path: Path) -> AsyncIterator[Suite]:
    """Return registry, deployer and gateway running as processes on a fresh database/vhost."""
    async with running_suite(commands, tmp_path, workspace=WORKSPACE, kind=Suite) as running:
        yield running


async def registry_model(suite: Suite, name: str) -> Any:
    """Create a model in the registry and return it."""
    return await suite.post(
        f"{suite.registry}/v1/models", {"name": name, "learning_type": "supervised"}, status=201
    )


@pytest.mark.timeout(900)
async def test_device_model_node_json_image_redeploy_and_stopped(
    suite: Suite, commands: Any, node_modules: Path, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    scorer = await registry_model(suite, f"scorer-{suffix}")
    digits = await registry_model(suite, f"digits-{suffix}")
    v1 = await suite.upload(
        scorer["id"], "handlers_echo", handlers_manifest("json", ["predict", "fail"]), "v1"
    )
    image_version = await suite.upload(
        digits["id"], "handlers_image", handlers_manifest("image", ["predict"]), "v1"
    )
    agent = await suite.start_agent(f"flow-device-{suffix}", {"site": "flows"})

    async def online() -> bool:
        page = await suite.get(f"{suite.deployer}/v1/devices?status=online")
        return agent.device_id in {d["id"] for d in page["items"]}

    await wait_for(online, timeout=STEP_TIMEOUT_S, interval=0.5)
    placed: dict[str, str] = {}
    for version in (v1, image_version):
        batch = await suite.post(
            f"{suite.deployer}/v1/deployments",
            {"version_id": version["id"], "device_ids": [agent.device_id]},
            status=201,
        )
        placed[version["id"]] = batch["items"][0]["id"]
    for version_id, deployment_id in placed.items():
        await suite.wait_deployment(deployment_id, version_id=version_id)

    local = await suite.get(f"{agent.url}/models")
    names = {m["model_id"]: m["model_name"] for m in local["items"]}
    image = png(8, 8)
    image_file = tmp_path / "digit.png"
    image_file.write_bytes(image)

    env = {
        "MODELYARD_AGENT_URL": agent.url,
        "MODELYARD_JSON_MODEL": names[scorer["id"]],
        "MODELYARD_JSON_VERSION": v1["id"],
        "MODELYARD_IMAGE_MODEL": names[digits["id"]],
        "MODELYARD_IMAGE_VERSION": image_version["id"],
        "MODELYARD_IMAGE_FILE": str(image_file),
        "MODELYARD_IMAGE_ANSWER": json.dumps(
            {
                "format": "png",
                "width": 8,
                "height": 8,
                "bytes": len(image),
                "sha256": hashlib.sha256(image).hexdigest(),
            }
        ),
    }
    results = tmp_path / "results.json"
    counted = await node_test(commands, "device-model", env, results)
    assert counted == {
        "dropdown_models": 2,
        "json_ok": 1,
        "image_ok": 1,
        "unknown_caught": 1,
        "handler_error_caught": 1,
    }

    # -- a new version while the flow runs: the node test sends a message every 100 ms --------
    v2 = await suite.upload(
        scorer["id"],
        "handlers_echo",
        handlers_manifest("json", ["predict", "fail"], MODEL_VERSION="2"),
        "v2",
    )
    ready = tmp_path / "flowing"
    redeploy_env = {
        **env,
        "MODELYARD_OLD_VERSION": v1["id"],
        "MODELYARD_NEW_VERSION": v2["id"],
        "MODELYARD_READY_FILE": str(ready),
    }
    flow = asyncio.create_task(node_test(commands, "redeploy", redeploy_env, results))

    async def flowing() -> bool:
        if flow.done():
            flow.result()  # raises the node test's failure at once
        return ready.exists()

    await wait_for(flowing, timeout=STEP_TIMEOUT_S, interval=0.2)
    redeployed = await suite.post(
        f"{suite.deployer}/v1/deployments",
        {"version_id": v2["id"], "device_ids": [agent.device_id]},
        status=201,
    )
    assert [d["id"] for d in redeployed["items"]] == [placed[v1["id"]]]
    counted = await flow
    redeploy = counted["redeploy"]
    print(f"redeploy while the flow runs: {redeploy}")
    assert redeploy["errors"] == 0, counted["redeploy_errors"]
    assert redeploy["old_answers"] >= 1
    assert redeploy["new_answers"] == 5

    # -- the model stopped: the node raises the agent's problem to a catch node ---------------
    deployment_id = placed[v1["id"]]
    await suite.post(f"{suite.deployer}/v1/deployments/{deployment_id}/stop", {}, status=202)

    async def stopped() -> bool:
        models = await suite.get(f"{agent.url}/models")
        (status,) = [m for m in models["items"] if m["deployment_id"] == deployment_id]
        return status["state"] == "stopped" and not status["running"]

    await wait_for(stopped, timeout=STEP_TIMEOUT_S, interval=0.25)
    counted = await node_test(commands, "stopped", env, results)
    assert counted["stopped_caught"] == 1


class FakeBackends:
    """Fake OpenAI backends as processes (tests/chaos/fake_openai.py), so they can be killed."""

    def __init__(self, commands: Any) -> None:
        self.commands = commands
        self.processes: dict[str, tuple[asyncio.subprocess.Process, int]] = {}

    async def start(self, name: str) -> int:
        port = self.commands.free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(FAKE_OPENAI),
            *("--port", str(port), "--name", name, "--chunks", "5", "--chunk-delay", "0.01"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes[name] = (process, port)

        async def listening() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            return True

        await wait_for(listening, timeout=30, interval=0.1)
        return port

    async def stop(self) -> None:
        for process, _ in self.processes.values():
            await self.commands.stop_process(process, grace=5)


@dataclass
class Gateway:
    """The gateway as its own process, on a database of its own (no broker: groups are set
    through its admin API, not followed from the deployer's events)."""

    url: str
    headers: dict[str, str]
    http: httpx.AsyncClient

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.http.post(f"{self.url}{path}", json=body, headers=self.headers)
        assert response.status_code == 201, f"POST {path}: {response.text}"
        return response.json()


@pytest.fixture
async def gateway(commands: Any, tmp_path: Path) -> AsyncIterator[Gateway]:
    """Return the gateway running as a process (`modelyard-gateway serve`) on a fresh database."""
    name = f"modelyard_nodered_{uuid.uuid4().hex[:8]}"
    database_url = await recreate_database(TEST_ADMIN_DB_URL, name)
    env = {
        "MODELYARD_DATABASE_URL": database_url,
        "MODELYARD_JWT_SECRET": TEST_JWT_SECRET,
        "MODELYARD_LOG_JSON": "false",
        "MODELYARD_GATEWAY_CONSUME_EVENTS": "false",
        "MODELYARD_GATEWAY_HEALTH_INTERVAL_S": "1",
        "MODELYARD_GATEWAY_CONFIG_REFRESH_S": "1",
    }
    gateway_bin = str(Path(sys.executable).parent / "modelyard-gateway")
    await commands.run_command(gateway_bin, "migrate", env=env)
    port = commands.free_port()
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *(gateway_bin, "serve", "--port", str(port)),
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=30) as http:

            async def ready() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"gateway exited:\n{log_path.read_text()[-4000:]}")
                try:
                    return (await http.get(f"{url}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout=60, interval=0.2)
            yield Gateway(url=url, headers=bearer("admin", WORKSPACE), http=http)
    finally:
        await commands.stop_process(process)
        print("--- gateway (last lines)", *log_path.read_text().splitlines()[-25:], sep="\n")
        connection = await asyncpg.connect(asyncpg_dsn(TEST_ADMIN_DB_URL))
        try:
            await connection.execute(
                f'DROP DATABASE IF EXISTS "{name}{TEST_DB_SUFFIX}" WITH (FORCE)'
            )
        finally:
            await connection.close()


@pytest.mark.timeout(600)
async def test_gateway_chat_node_streams_fails_over_and_raises_errors(
    gateway: Gateway, commands: Any, node_modules: Path, tmp_path: Path
) -> None:
    backends = FakeBackends(commands)
    try:
        instance_ids = []
        for name in ("backend-a", "backend-b"):
            port = await backends.start(name)
            created = await gateway.post(
                "/v1/instances",
                {
                    "name": name,
                    "kind": "local",
                    "host": "127.0.0.1",
                    "port": port,
                    "upstream_model": f"model-{name}",
                    "connect_timeout_s": 1.0,
                    "health_path": "/v1/models",
                },
            )
            instance_ids.append(created["id"])
        group = f"chat-{uuid.uuid4().hex[:6]}"
        await gateway.post("/v1/groups", {"name": group, "instance_ids": instance_ids})
        key = await gateway.post("/v1/keys", {"name": "flows"})
        auth = {"Authorization": f"Bearer {key['key']}"}

        async def offered() -> bool:
            listed = await gateway.http.get(f"{gateway.url}/v1/models", headers=auth)
            return listed.status_code == 200 and group in [m["id"] for m in listed.json()["data"]]

        await wait_for(offered, timeout=STEP_TIMEOUT_S, interval=0.2)
        env = {
            "MODELYARD_GATEWAY_URL": gateway.url,
            "MODELYARD_GATEWAY_KEY": key["key"],
            "MODELYARD_GROUP": group,
            "MODELYARD_BACKEND_PIDS": json.dumps(
                {name: process.pid for name, (process, _) in backends.processes.items()}
            ),
        }
        counted = await node_test(commands, "gateway-chat", env, tmp_path / "results.json")
        print(f"gateway chat node: {counted}")
        assert counted["plain_ok"] == 1
        assert counted["stream_chunks"] == 5
        failover = counted["failover"]
        assert failover["killed"] != failover["answered_by"]
        assert counted["unavailable_caught"] == 2
        for process, _ in backends.processes.values():
            assert await process.wait() == -9  # both killed by the node test
    finally:
        await backends.stop()


async def test_example_flows_deploy_in_node_red(
    commands: Any, node_modules: Path, tmp_path: Path
) -> None:
    counted = await node_test(commands, "example-flows", {}, tmp_path / "results.json")
    assert counted == {"example_flows": 2}


@pytest.mark.timeout(600)
async def test_gateway_chat_node_raises_a_group_the_policy_gate_refuses(
    suite: Suite, commands: Any, node_modules: Path, tmp_path: Path
) -> None:
    # A group bound to a registry model (bound while the workspace's gate is off, the test
    # default); the workspace then chooses `enforce` and an approver blocks the model: the
    # gateway refuses the group with 403 `model_not_approved`.
    draft = await registry_model(suite, f"draft-{uuid.uuid4().hex[:6]}")
    blocked = f"unapproved-{uuid.uuid4().hex[:6]}"
    await suite.post(
        f"{suite.gateway}/v1/groups",
        {"name": blocked, "registry_model_id": draft["id"]},
        status=201,
    )
    key = await suite.post(f"{suite.gateway}/v1/keys", {"name": "flows"}, status=201)
    response = await suite.http.put(
        f"{suite.registry}/v1/policy",
        json={"gate": "enforce", "comment": "node-red test"},
        headers=suite.headers,
    )
    assert response.status_code == 200, response.text
    blocked_by_bob = await suite.http.post(
        f"{suite.registry}/v1/models/{draft['id']}/approval/decision",
        json={"decision": "blocked", "comment": "not for flows"},
        headers=bearer("approver", WORKSPACE, sub="bob"),
    )
    assert blocked_by_bob.status_code == 200, blocked_by_bob.text

    async def refused() -> bool:
        answer = await suite.http.post(
            f"{suite.gateway}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key['key']}"},
            json={"model": blocked, "messages": [{"role": "user", "content": "hi"}]},
        )
        return answer.status_code == 403

    await wait_for(refused, timeout=STEP_TIMEOUT_S, interval=0.5)
    env = {
        "MODELYARD_GATEWAY_URL": suite.gateway,
        "MODELYARD_GATEWAY_KEY": key["key"],
        "MODELYARD_BLOCKED_GROUP": blocked,
    }
    counted = await node_test(commands, "not-approved", env, tmp_path / "results.json")
    assert counted == {"not_approved_caught": 2}
