"""Heartbeats from a real agent (issue 23): its deployment's health shows on the deployment,
and a device whose agent is killed reads offline once it missed two of its heartbeat intervals.

Registry and deployer run as processes on a fresh database and vhost, the agent with its own
data dir on the real broker and Docker. The agent beats every 2 s and says so in its heartbeats;
the deployer keeps its default interval (30 s, for devices that do not say theirs) and a grace of
1 s (the agent samples health for up to min(5 s, interval / 2) before each heartbeat): the device
reads offline after two of its own intervals, not the deployer's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from suite_testkit import Suite, openai_manifest, running_suite  # tests/ on path

from modelyard_testkit.testing import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.end_to_end]

WORKSPACE = "heartbeats"
INTERVAL_S = 2.0
GRACE_S = 1.0
# How often the test reads the device: the measured time is this much coarse.
POLL_S = 0.1


@pytest.fixture
async def suite(commands: Any, tmp_path: Path) -> AsyncIterator[Suite]:
    async with running_suite(
        commands,
        tmp_path,
        workspace=WORKSPACE,
        kind=Suite,
        # The deployer keeps its default interval (30 s): the agent's heartbeats declare theirs.
        extra_env={"MODELYARD_DEPLOYER_HEARTBEAT_GRACE_S": str(GRACE_S)},
    ) as running:
        yield running


async def device_status(suite: Suite, device_id: str) -> str:
    return str((await suite.get(f"{suite.deployer}/v1/devices/{device_id}"))["status"])


@pytest.mark.timeout(300)
async def test_health_shows_and_a_killed_agent_reads_offline_within_two_intervals(
    suite: Suite,
) -> None:
    agent = await suite.start_agent(
        "pulse", {"site": "lab"}, {"MODELYARD_AGENT_HEARTBEAT_INTERVAL_S": str(INTERVAL_S)}
    )
    model = await suite.post(
        f"{suite.registry}/v1/models",
        {
            "name": f"pulse-chat-{uuid.uuid4().hex[:6]}",
            "learning_type": "supervised",
            "functionality": "chat",
            "foundations": "transformer",
        },
        status=201,
    )
    version = await suite.upload(model["id"], "openai_echo", openai_manifest(), "v1")
    (deployment,) = (
        await suite.post(
            f"{suite.deployer}/v1/deployments",
            {"version_id": version["id"], "device_ids": [agent.device_id]},
            status=201,
        )
    )["items"]
    assert deployment["health"] is None
    await suite.wait_deployment(deployment["id"], version_id=version["id"])

    # Its health arrives with a heartbeat: probed healthy, memory read, within its limit.
    async def healthy() -> Any:
        shown = (await suite.get(f"{suite.deployer}/v1/deployments/{deployment['id']}"))["health"]
        ok = shown and shown["probe_ok"] and shown["memory_mb"] and shown["cpu_percent"] is not None
        return shown if ok else None

    health = await wait_for(healthy, timeout=60, interval=0.5)
    assert health["probe_status"] == 200
    assert health["restarts"] == 0
    assert 0 < health["memory_mb"] <= health["memory_limit_mb"] <= 128.5
    assert health["cpu_percent"] >= 0
    on_device = await suite.get(f"{suite.deployer}/v1/devices/{agent.device_id}/deployments")
    assert on_device["items"][0]["health"]["probe_ok"] is True

    # The interval its heartbeats declare, not the deployer's default, is the device's.
    assert (await suite.get(f"{suite.deployer}/v1/devices/{agent.device_id}"))[
        "heartbeat_interval_s"
    ] == INTERVAL_S
    # Online now; kill -9 the agent (no goodbye) and time how long the device still reads online.
    assert await device_status(suite, agent.device_id) == "online"
    _, process, _ = next(p for p in suite.processes if p[0] == "pulse")
    os.kill(process.pid, signal.SIGKILL)
    killed = time.monotonic()
    await process.wait()
    while (device := await suite.get(f"{suite.deployer}/v1/devices/{agent.device_id}"))[
        "status"
    ] == "online":
        assert time.monotonic() - killed < 4 * INTERVAL_S + GRACE_S, "still online"
        await asyncio.sleep(POLL_S)
    silent = time.monotonic() - killed
    since_seen = (
        datetime.now(UTC) - datetime.fromisoformat(device["last_seen_at"])
    ).total_seconds()
    print(
        f"offline {silent:.2f} s after kill -9, {since_seen:.2f} s after its last heartbeat "
        f"(interval {INTERVAL_S} s, grace {GRACE_S} s)"
    )

    # Offline once two intervals and the grace passed since its last heartbeat (plus the
    # polling step) ...
    assert 2 * INTERVAL_S + GRACE_S <= since_seen <= 2 * INTERVAL_S + GRACE_S + 2 * POLL_S + 0.3
    # ... so at most that long after the kill (plus the time a heartbeat sent just before it
    # took to be applied), and not before the first missed heartbeat was due.
    assert INTERVAL_S <= silent <= 2 * INTERVAL_S + GRACE_S + 2 * POLL_S + 0.5
    listed = await suite.get(f"{suite.deployer}/v1/devices?status=offline")
    assert [d["id"] for d in listed["items"]] == [agent.device_id]
    listed = await suite.get(f"{suite.deployer}/v1/devices?status=online")
    assert listed["items"] == []
