"""The README's walkthrough done entirely in the console, in a real browser (issue 21).

The same story as the README's CLI walkthrough, by people at screens: an admin turns the
workspace's gate to Enforce; the model, the AI system that uses it and how; a review by two
people (the requester cannot approve); the project uploaded; a deploy to a real device, whose
state is watched until it runs; a gateway model that follows the AI model; an API key; and a
chat answer streamed in the playground from the container on the device.

Everything but the device is what tests/test_console.py starts (registry, deployer and gateway
in prod mode, the OpenID provider, the console). The device is a real agent process on the real
broker and Docker, registered as `make up`'s agent is before anyone opens the console.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_console import (  # the console's suite (tests/ is on the path)
    BIN,
    CONSOLE,
    REPO,
    Platform,
    assert_checks,
    console_dist,
    platform,
    project_zips,
    run_node,
)

from modelyard_testkit.testing import TEST_AMQP_URL, free_port, wait_for

__all__ = ["console_dist", "platform"]  # the fixtures this module uses from test_console

DEVICE = "edge-walkthrough-1"
MODEL = "echo-chat"
SYSTEM = "helpdesk"
GROUP = "echo-chat"
QUESTION = "hello from the console"

EXPECTED_CHECKS = {
    "an admin turns the gate to Enforce",
    "the model, the AI system that uses it, and how",
    "a review by two people: alice asks, bob approves",
    "the project uploaded, its manifest shown first",
    "deployed to the device, its state watched until running",
    "a gateway model that follows the AI model, and an API key",
    "the answer streams in the playground, from the device",
}


async def start_agent(
    platform: Platform, token: str, tmp_path: Path, processes: list[asyncio.subprocess.Process]
) -> dict[str, Any]:
    """Register the device and run its agent (as `make up` does); return the device."""
    headers = {"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": "acme"}
    ingress_port, port = free_port(), free_port()
    async with httpx.AsyncClient(base_url=platform.deployer, headers=headers, timeout=30) as http:
        created = await http.post(
            "/v1/devices",
            json={
                "name": DEVICE,
                "labels": {"site": "walkthrough"},
                "advertise_host": "127.0.0.1",
                "ingress_port": ingress_port,
            },
        )
        assert created.status_code == 201, created.text
        device = created.json()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")},
            "MODELYARD_LOG_JSON": "false",
            "MODELYARD_AGENT_DEVICE_ID": device["id"],
            "MODELYARD_AGENT_TOKEN": device["token"],
            "MODELYARD_AGENT_DATA_DIR": str(tmp_path / "agent"),
            "MODELYARD_AGENT_PORT": str(port),
            "MODELYARD_AGENT_ADVERTISE_HOST": "127.0.0.1",
            "MODELYARD_AGENT_INGRESS_PORT": str(ingress_port),
            # No login in the broker URL: the agent logs in as its device.
            "MODELYARD_AGENT_AMQP_URL": TEST_AMQP_URL.replace("guest:guest@", ""),
            "MODELYARD_AGENT_DEPLOYER_URL": platform.deployer,
            "MODELYARD_AGENT_HEARTBEAT_INTERVAL_S": "1",
            "MODELYARD_AGENT_HEALTH_TIMEOUT_S": "90",
        }
        log = await asyncio.to_thread((tmp_path / "agent.log").open, "wb")
        with log:  # the child keeps its own descriptor
            processes.append(
                await asyncio.create_subprocess_exec(
                    *(str(BIN / "modelyard-agent"), "serve", "--port", str(port)),
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,  # stopped with its group (Commands.stop_process)
                )
            )

        async def online() -> bool:
            seen = await http.get(f"/v1/devices/{device['id']}")
            return bool(seen.status_code == 200 and seen.json()["status"] == "online")

        await wait_for(online, timeout=60, interval=0.5)
    return dict(device)


# A deploy builds the project's container: minutes on a busy CI machine.
@pytest.mark.docker
@pytest.mark.timeout(900)
async def test_the_readme_walkthrough_in_the_console(
    platform: Platform, console_dist: Path, tmp_path: Path, commands: Any
) -> None:
    token = await asyncio.to_thread(platform.provider.token, "seeder")
    processes: list[asyncio.subprocess.Process] = []
    device: dict[str, Any] | None = None
    try:
        device = await start_agent(platform, token, tmp_path, processes)
        project = await asyncio.to_thread(commands.project_zip, "openai_echo")
        shots = os.environ.get("MODELYARD_CONSOLE_SCREENSHOTS")
        screenshots = str(REPO / shots) if shots else str(tmp_path / "screenshots")
        output = await run_node(
            CONSOLE / "e2e" / "walkthrough.e2e.mjs",
            {
                "console_url": platform.console,
                "screenshots": screenshots,
                "served_file": str(tmp_path / "served-by.txt"),
                "seeded": {
                    "device": DEVICE,
                    "model": MODEL,
                    "system": SYSTEM,
                    "group": GROUP,
                    "question": QUESTION,
                    "zip": project_zips(tmp_path, project)["good"],
                },
            },
            tmp_path,
            timeout=720,
        )
        assert_checks(output, EXPECTED_CHECKS)
        served = (tmp_path / "served-by.txt").read_text().strip()
        print("the playground's answer was served by", served)
        await assert_served_by_the_device(platform, token, device, served)
    finally:
        for process in processes:
            await commands.stop_process(process)
        if device is not None:  # the agent leaves its containers running when it stops
            await commands.docker_remove_labelled([f"io.modelyard.device={device['id']}"])
        log = tmp_path / "agent.log"
        if log.exists():
            print("--- agent.log", log.read_text(errors="replace")[-3000:], sep="\n")


async def assert_served_by_the_device(
    platform: Platform, token: str, device: dict[str, Any], served: str
) -> None:
    """What the browser did is what the services hold: the gate, the approval, the deployment
    running on the device, and the playground's chat in the gateway's request log, answered."""
    headers = {"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": "acme"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        policy = (await http.get(f"{platform.registry}/v1/policy")).json()
        assert policy["gate"] == "enforce", policy
        (model,) = (await http.get(f"{platform.registry}/v1/models", params={"q": MODEL})).json()[
            "items"
        ]
        approval = (await http.get(f"{platform.registry}/v1/models/{model['id']}/approval")).json()
        assert (approval["state"], approval["requested_by"], approval["decided_by"]) == (
            "approved",
            "root",
            "bob",
        ), approval
        deployments = (
            await http.get(
                f"{platform.deployer}/v1/deployments",
                params={"device_id": device["id"], "model_id": model["id"]},
            )
        ).json()["items"]
        assert [(d["state"], d["created_by"]) for d in deployments] == [("running", "root")], (
            deployments
        )

        # The request log is written in batches: the chat shows up within a flush or two.
        async def logged() -> list[Any] | None:
            page = await http.get(f"{platform.gateway}/v1/requests", params={"group": GROUP})
            answered = [
                (r["status"], r["stream"], r["instances"][-1:])
                for r in page.json()["items"]
                if r["status"] == 200
            ]
            return answered or None

        # The browser's one answered chat: streamed, by the instance the playground named.
        assert await wait_for(logged, timeout=60, interval=0.5) == [(200, True, [served])]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-s"]))
