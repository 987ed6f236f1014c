"""Logs from the device (issue 23): `GET /v1/deployments/{id}/logs`, tail and follow, asked of
the device over its own command channel and answered on a queue of the deployer's own.

Registry and deployer run as processes on a fresh database and vhost; one real agent process
runs `tests/projects/chatty` (it prints known lines) in a real container. Beside it, a device
whose "agent" is this test, logged in to the broker as that device: it takes its commands and
never answers. A third device is registered and never connects. The broker's real per-device
permissions are what keeps devices apart.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiormq.exceptions
import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage
from suite_testkit import Suite, openai_manifest, running_suite  # tests/ on path

from modelyard_client import AsyncModelyard, Endpoints, operations
from modelyard_common.contracts import (
    DEPLOYMENT_LOGS_REQUESTED,
    DEVICE_COMMAND,
    DEVICES_EXCHANGE,
    REPLIES_EXCHANGE,
    logs_reply_key,
)
from modelyard_common.device_identity import device_amqp_url
from modelyard_common.events import CloudEvent, new_event
from modelyard_testkit.testing import bearer, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.end_to_end]

WORKSPACE = "logs"
LOGS_TIMEOUT_S = 3.0
KEEPALIVE_S = 1.0
BOOT_LINES = [f"boot {n:03d}" for n in range(1, 251)]


class SilentDevice:
    """A registered device whose agent is this test: it takes its commands, answers none."""

    def __init__(self, device_id: str, token: str, amqp_url: str) -> None:
        self.device_id = device_id
        self.url = device_amqp_url(amqp_url, device_id, token)
        self.received: list[CloudEvent] = []
        self.connection: aio_pika.abc.AbstractConnection | None = None

    async def start(self) -> None:
        self.connection = await aio_pika.connect(self.url)
        channel = await self.connection.channel()
        queue = await channel.declare_queue(f"device.{self.device_id}", passive=True)

        async def take(message: AbstractIncomingMessage) -> None:
            self.received.append(CloudEvent.model_validate_json(message.body))
            await message.ack()

        await queue.consume(take)

    def of_type(self, event_type: str) -> list[CloudEvent]:
        return [e for e in self.received if e.type == event_type]

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


class LogsSuite(Suite):
    model_name: str
    model_id: str
    agent_device: str
    deployment: str  # chatty on the real agent
    silent: SilentDevice
    silent_deployment: str
    offline_deployment: str

    @property
    def vhost(self) -> str:
        return urlsplit(self.env["MODELYARD_AMQP_URL"]).path.lstrip("/")

    @property
    def device_broker_url(self) -> str:
        return self.env["MODELYARD_AMQP_URL"].replace("guest:guest@", "")

    def logs_url(self, deployment_id: str) -> str:
        return f"{self.deployer}/v1/deployments/{deployment_id}/logs"

    async def rabbitmqctl(self, *argv: str) -> list[str]:
        """Return the lines `rabbitmqctl -q <argv>` prints (the broker's state now, no lag)."""
        _, output = await self.commands.run_command("rabbitmqctl", "-q", *argv)
        return [line for line in output.splitlines() if line.strip()]

    async def reply_queues(self) -> list[str]:
        """Return the exclusive queues on the suite's vhost (the deployer's reply queues)."""
        rows = await self.rabbitmqctl(
            "list_queues", "-p", self.vhost, "--no-table-headers", "name", "exclusive"
        )
        return [row.split("\t")[0] for row in rows if row.rstrip().endswith("\ttrue")]

    async def agent_streams_ended(self) -> int:
        """Return how many log streams the agent ended because their asker had gone."""
        log_path = next(path for name, _, path in self.processes if name == "logs-device")
        text = await asyncio.to_thread(log_path.read_text, errors="replace")
        return text.count("the asker stopped listening")


async def ignore(message: AbstractIncomingMessage) -> None:
    """Take a message and do nothing with it (what matters is whether it may be taken)."""


async def outcome(attempt: Any) -> str:
    """Return "refused" when the broker refused the attempt for lack of permission."""
    try:
        await attempt
    # aiormq hands the channel's close to a pending confirm as a cancellation with its reason
    except (aiormq.exceptions.ChannelAccessRefused, asyncio.CancelledError) as exc:
        if "ACCESS_REFUSED" not in str(exc):
            raise
        return "refused"
    return "allowed"


async def register(suite: Suite, name: str) -> dict[str, Any]:
    created: dict[str, Any] = await suite.post(
        f"{suite.deployer}/v1/devices", {"name": name, "labels": {"site": name}}, status=201
    )
    return created


async def deploy(suite: Suite, version_id: str, device_id: str) -> str:
    batch = await suite.post(
        f"{suite.deployer}/v1/deployments",
        {"version_id": version_id, "device_ids": [device_id]},
        status=201,
    )
    deployment_id: str = batch["items"][0]["id"]
    return deployment_id


@pytest.fixture(scope="module")
async def suite(
    commands: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LogsSuite]:
    tmp: Path = tmp_path_factory.mktemp("device-logs")
    async with running_suite(
        commands,
        tmp,
        workspace=WORKSPACE,
        kind=LogsSuite,
        extra_env={
            "MODELYARD_DEPLOYER_LOGS_TIMEOUT_S": str(LOGS_TIMEOUT_S),
            "MODELYARD_DEPLOYER_LOGS_KEEPALIVE_S": str(KEEPALIVE_S),
            "MODELYARD_DEPLOYER_LOGS_FOLLOW_MAX_S": "60",
        },
    ) as running:
        model = await running.post(
            f"{running.registry}/v1/models",
            {
                "name": f"chatty-{uuid.uuid4().hex[:6]}",
                "learning_type": "supervised",
                "functionality": "chat",
                "foundations": "transformer",
            },
            status=201,
        )
        running.model_name, running.model_id = model["name"], model["id"]
        version = await running.upload(model["id"], "chatty", openai_manifest(), "chatty")
        agent = await running.start_agent("logs-device", {"site": "logs"})
        running.agent_device = agent.device_id
        running.deployment = await deploy(running, version["id"], agent.device_id)

        silent = await register(running, "silent-device")
        running.silent = SilentDevice(silent["id"], silent["token"], running.device_broker_url)
        await running.silent.start()
        running.silent_deployment = await deploy(running, version["id"], silent["id"])
        offline = await register(running, "offline-device")
        running.offline_deployment = await deploy(running, version["id"], offline["id"])

        await running.wait_deployment(running.deployment, version_id=version["id"])
        try:
            yield running
        finally:
            await running.silent.close()


async def test_tail_returns_exactly_the_last_lines_the_container_printed(
    suite: LogsSuite,
) -> None:
    response = await suite.http.get(
        suite.logs_url(suite.deployment), params={"tail": 100}, headers=suite.headers
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    lines = response.text.split("\n")
    assert lines[-1] == ""  # every line ends in a newline
    assert lines[:-1] == BOOT_LINES[-100:]

    one = await suite.http.get(
        suite.logs_url(suite.deployment), params={"tail": 1}, headers=suite.headers
    )
    assert one.text == "boot 250\n"


async def test_a_whole_tail_carries_stderr_and_cleans_untrusted_lines(suite: LogsSuite) -> None:
    response = await suite.http.get(
        suite.logs_url(suite.deployment), params={"tail": 10_000}, headers=suite.headers
    )

    assert response.status_code == 200, response.text
    lines = response.text.split("\n")[:-1]
    assert len(lines) == 253, [(len(line), line[:12]) for line in lines[:5]]
    assert lines[0] == "to stderr"
    assert lines[1] == "nulbyte"  # the NUL byte is gone
    assert lines[2] == "x" * 8192 + " [truncated]"  # 20,000 characters cut to the bound
    assert lines[3:] == BOOT_LINES
    assert response.headers["x-modelyard-truncated"] == "true"


async def test_follow_receives_lines_printed_after_the_request_started(
    suite: LogsSuite,
) -> None:
    marker = uuid.uuid4().hex
    received: list[str] = []
    ended_before = await suite.agent_streams_ended()
    # A client of its own, closed on leaving: its connection goes away as a caller's would.
    async with (
        httpx.AsyncClient(timeout=30) as reader,
        reader.stream(
            "GET",
            suite.logs_url(suite.deployment),
            params={"tail": 2, "follow": "true"},
            headers=suite.headers,
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        # The deployer listens on one reply queue of its own, and the stream is open on the
        # device: what the container prints next comes through.
        assert len(await suite.reply_queues()) == 1
        for n in range(3):
            call = await suite.http.post(
                f"{suite.agents[0].url}/models/{suite.model_name}/v1/chat/completions",
                json={"marker": marker, "n": n},
            )
            assert call.status_code == 200, call.text

        async def read() -> None:
            async for line in response.aiter_lines():
                received.append(line)
                if sum(marker in line for line in received) == 3:
                    return

        await asyncio.wait_for(read(), 30)

    assert received[:2] == BOOT_LINES[-2:]
    calls = [line for line in received if marker in line]
    assert [line.endswith(f'"n":{n}}}') for n, line in enumerate(calls)] == [True, True, True]

    # The client went away: the deployer's reply queue is gone, and the device's next chunk
    # (a keepalive at the latest) comes back unroutable, which ends its stream.
    async def nothing_left() -> bool:
        return not await suite.reply_queues() and (
            await suite.agent_streams_ended() == ended_before + 1
        )

    await wait_for(nothing_left, timeout=20, interval=0.25)


async def test_a_caller_who_may_not_see_the_deployment_gets_404_and_nothing_is_sent(
    suite: LogsSuite,
) -> None:
    before = len(suite.silent.of_type(DEPLOYMENT_LOGS_REQUESTED))
    strangers = {
        "another workspace": bearer("admin", "elsewhere"),
        "no grant on the model": bearer("viewer", WORKSPACE, sub="mallory"),
    }
    for who, headers in strangers.items():
        for deployment in (suite.silent_deployment, suite.deployment):
            response = await suite.http.get(suite.logs_url(deployment), headers=headers)
            assert response.status_code == 404, (who, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            # exactly what reading the deployment itself answers
            read = await suite.http.get(
                f"{suite.deployer}/v1/deployments/{deployment}", headers=headers
            )
            assert read.status_code == 404, (who, read.text)
    missing = await suite.http.get(suite.logs_url(str(uuid.uuid4())), headers=suite.headers)
    assert missing.status_code == 404

    # the device took its deploy command, so it would have taken a logs request too
    assert suite.silent.of_type(DEVICE_COMMAND)
    await asyncio.sleep(1.0)
    assert len(suite.silent.of_type(DEPLOYMENT_LOGS_REQUESTED)) == before


async def test_a_device_that_does_not_answer_gets_the_timeout_problem_within_the_bound(
    suite: LogsSuite,
) -> None:
    before = len(suite.silent.of_type(DEPLOYMENT_LOGS_REQUESTED))
    started = time.monotonic()
    response = await suite.http.get(
        suite.logs_url(suite.silent_deployment), headers=suite.headers, timeout=60
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 504, response.text
    problem = response.json()
    assert problem["type"] == "https://modelyard.dev/problems/device-timeout"
    assert problem["status"] == 504
    assert LOGS_TIMEOUT_S <= elapsed < LOGS_TIMEOUT_S + 5
    requests = suite.silent.of_type(DEPLOYMENT_LOGS_REQUESTED)
    assert len(requests) == before + 1
    assert requests[-1].data["deployment_id"] == suite.silent_deployment
    assert requests[-1].data["tail"] == 100
    assert not await suite.reply_queues(), "the deployer keeps nothing of a request that ended"


async def test_an_offline_device_gets_the_offline_problem_at_once(suite: LogsSuite) -> None:
    started = time.monotonic()
    response = await suite.http.get(suite.logs_url(suite.offline_deployment), headers=suite.headers)

    assert response.status_code == 503, response.text
    assert response.json()["type"] == "https://modelyard.dev/problems/device-offline"
    assert response.headers["retry-after"] == "10"
    assert time.monotonic() - started < LOGS_TIMEOUT_S


@pytest.mark.parametrize(
    "params", [{"tail": 10_001}, {"tail": -1}, {"follow": "maybe"}, {"since": "yesterday"}]
)
async def test_bad_bounds_are_problems_and_send_nothing(
    suite: LogsSuite, params: dict[str, Any]
) -> None:
    before = len(suite.silent.of_type(DEPLOYMENT_LOGS_REQUESTED))
    response = await suite.http.get(
        suite.logs_url(suite.silent_deployment), params=params, headers=suite.headers
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert len(suite.silent.of_type(DEPLOYMENT_LOGS_REQUESTED)) == before


async def test_a_device_login_can_neither_answer_for_nor_read_another_device(
    suite: LogsSuite,
) -> None:
    """The silent device's own broker login, against the real agent's answers."""
    other = suite.agent_device
    url = suite.silent.url

    async def attempt(action: Any) -> None:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            await action(channel)

    async def publish(exchange_name: str, key: str) -> Any:
        async def act(channel: aio_pika.abc.AbstractChannel) -> None:
            exchange = (
                channel.default_exchange
                if exchange_name == ""
                else await channel.get_exchange(exchange_name, ensure=False)
            )
            event = new_event(type="agent.deployment.logs", source="intruder", data={})
            await exchange.publish(
                aio_pika.Message(event.to_bytes(), user_id=f"device-{suite.silent.device_id}"),
                routing_key=key,
            )

        return act

    # Its own answers are allowed: the permission is real, not a blanket refusal.
    await attempt(
        await publish(REPLIES_EXCHANGE, logs_reply_key(suite.silent.device_id, uuid.uuid4()))
    )

    refused = {
        "answer as another device": await publish(
            REPLIES_EXCHANGE, logs_reply_key(other, uuid.uuid4())
        ),
        "answer under another prefix": await publish(REPLIES_EXCHANGE, f"device.{other}"),
        "command another device": await publish(DEVICES_EXCHANGE, f"device.{other}"),
        "write to any queue by name": await publish("", f"device.{other}"),
    }

    async def declare_own_queue(channel: aio_pika.abc.AbstractChannel) -> None:
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(REPLIES_EXCHANGE, routing_key=f"logs.{other}.#")

    async def read_commands_of_other(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_queue(f"device.{other}", passive=True)
        queue = await channel.get_queue(f"device.{other}", ensure=False)
        await queue.consume(ignore)

    refused["listen to another device's answers"] = declare_own_queue
    refused["read another device's commands"] = read_commands_of_other

    # and the deployer's own reply queue of a live conversation with the other device
    async with (
        httpx.AsyncClient(timeout=30) as reader,
        reader.stream(
            "GET",
            suite.logs_url(suite.deployment),
            params={"tail": 0, "follow": "true"},
            headers=suite.headers,
        ) as response,
    ):
        assert response.status_code == 200
        (reply_queue,) = await suite.reply_queues()

        async def read_reply_queue(channel: aio_pika.abc.AbstractChannel) -> None:
            queue = await channel.get_queue(reply_queue, ensure=False)
            await queue.consume(ignore)

        refused["consume the deployer's reply queue"] = read_reply_queue
        outcomes = {}
        for what, action in refused.items():
            outcomes[what] = await outcome(attempt(action))

    assert outcomes == dict.fromkeys(refused, "refused")


async def test_the_cli_prints_the_tail_and_says_why_a_device_cannot_answer(
    suite: LogsSuite,
) -> None:
    token = suite.headers["Authorization"].removeprefix("Bearer ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env |= {
        "MODELYARD_CONFIG": str(suite.tmp / "no-cli-config.yaml"),
        "MODELYARD_REGISTRY_URL": suite.registry,
        "MODELYARD_DEPLOYER_URL": suite.deployer,
        "MODELYARD_TOKEN": token,
    }

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "modelyard"),
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, out.decode(), err.decode()

    api = await suite.http.get(
        suite.logs_url(suite.deployment), params={"tail": 3}, headers=suite.headers
    )
    code, out, err = await cli("deployments", "logs", suite.deployment[:8], "--tail", "3")
    assert (code, out) == (0, api.text), err
    assert len(out.splitlines()) == 3

    code, out, err = await cli("deployments", "logs", suite.offline_deployment, "-n", "5")
    assert code == 1
    assert out == ""
    assert "not connected to the message broker" in err


async def test_the_sdk_follows_a_quiet_stream_past_its_read_timeout(suite: LogsSuite) -> None:
    token = suite.headers["Authorization"].removeprefix("Bearer ")
    first, second = uuid.uuid4().hex, uuid.uuid4().hex

    async def call(marker: str) -> None:
        response = await suite.http.post(
            f"{suite.agents[0].url}/models/{suite.model_name}/v1/chat/completions",
            json={"marker": marker},
        )
        assert response.status_code == 200

    endpoints = Endpoints(deployer_url=suite.deployer, token=token)
    async with AsyncModelyard(endpoints, timeout=1.0) as sdk:
        chunks = sdk.stream_bytes(
            operations.get_deployment_logs(suite.deployment, tail=1, follow=True)
        )
        # The request goes out with the first read: the last line there is says it is open.
        text = (await asyncio.wait_for(anext(chunks), 30)).decode()
        assert text.count("\n") == 1
        for marker in (first, second):
            await call(marker)
            while marker not in text:
                text += (await asyncio.wait_for(anext(chunks), 30)).decode()
            # Quiet for longer than the client's timeout: a followed stream is not timed out.
            await asyncio.sleep(2.5)
        await chunks.aclose()
    assert text.splitlines()[1:] == [
        f'call {{"marker":"{first}"}}',
        f'call {{"marker":"{second}"}}',
    ]
