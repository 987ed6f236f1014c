"""Fleet rollouts with real device agents (issue 23): waves, soak, abort and rollback, offline
devices skipped, pause and resume, one rollout per device, bad bodies.

Registry and deployer run as processes on a fresh database and vhost; six agents, each with its
own data dir, on the real broker and Docker. The tests share the suite and run in order: the
first rollout puts version 1 on every device, the later ones start from there.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from suite_testkit import Suite, openai_manifest, running_suite  # tests/ on path

from modelyard_testkit.testing import TEST_JWT_SECRET, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.end_to_end]

WORKSPACE = "rollouts"
AGENTS = 6
STEP_TIMEOUT_S = 120.0


class Fleet(Suite):
    """The suite, a model with three versions, and the six agents."""

    model_id: str
    v1: str
    v2: str
    bad: str

    async def rollout(self, rollout_id: str) -> Any:
        return await self.get(f"{self.deployer}/v1/rollouts/{rollout_id}")

    async def create_rollout(self, body: dict[str, Any], *, status: int = 201) -> Any:
        return await self.post(f"{self.deployer}/v1/rollouts", body, status=status)

    async def until(self, rollout_id: str, *states: str) -> Any:
        """Wait until the rollout is in one of `states`; fail at once on another final one."""

        async def reached() -> Any:
            rollout = await self.rollout(rollout_id)
            if rollout["state"] in states:
                return rollout
            assert rollout["state"] not in ("completed", "aborted"), rollout
            return None

        return await wait_for(reached, timeout=STEP_TIMEOUT_S, interval=0.5)

    def device(self, index: int) -> str:
        return self.agents[index].device_id


@pytest.fixture(scope="module")
async def fleet(commands: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    tmp = tmp_path_factory.mktemp("rollouts")
    async with running_suite(
        commands,
        tmp,
        workspace=WORKSPACE,
        kind=Fleet,
        extra_env={"MODELYARD_DEPLOYER_ROLLOUT_INTERVAL_S": "0.5"},
    ) as suite:
        model = await suite.post(
            f"{suite.registry}/v1/models",
            {
                "name": f"fleet-chat-{uuid.uuid4().hex[:6]}",
                "learning_type": "supervised",
                "functionality": "chat",
                "foundations": "transformer",
            },
            status=201,
        )
        suite.model_id = model["id"]
        suite.v1 = (
            await suite.upload(model["id"], "openai_echo", openai_manifest(REPLY_PREFIX="v1"), "v1")
        )["id"]
        suite.v2 = (
            await suite.upload(model["id"], "openai_echo", openai_manifest(REPLY_PREFIX="v2"), "v2")
        )["id"]
        # Python cannot start without its standard library: the container exits at once.
        crashing = openai_manifest(PYTHONHOME="/nonexistent")
        suite.bad = (await suite.upload(model["id"], "openai_echo", crashing, "never healthy"))[
            "id"
        ]
        await asyncio.gather(
            *(
                suite.start_agent(
                    f"device-{i}", {"fleet": "rollouts", "ring": "canary" if i < 2 else "main"}
                )
                for i in range(AGENTS)
            )
        )
        suite.agents.sort(key=lambda a: a.name)

        # An agent answers /healthz before the deployer has read its first heartbeat; a rollout
        # started in between would skip that device as one that never sent one.
        async def all_online() -> bool:
            page = await suite.get(f"{suite.deployer}/v1/devices?status=online&limit=100")
            online = {d["id"] for d in page["items"]}
            return {a.device_id for a in suite.agents} <= online

        await wait_for(all_online, timeout=STEP_TIMEOUT_S, interval=0.5)
        yield suite


async def running_on(fleet: Fleet, device_id: str) -> dict[str, Any]:
    """Return the model's deployment on the device."""
    page = await fleet.get(
        f"{fleet.deployer}/v1/deployments?device_id={device_id}&model_id={fleet.model_id}"
    )
    (deployment,) = [d for d in page["items"] if d["desired_state"] != "removed"]
    return dict(deployment)


@pytest.mark.timeout(300)
async def test_a_two_wave_rollout_completes(fleet: Fleet) -> None:
    rollout = await fleet.create_rollout(
        {
            "version_id": fleet.v1,
            "selector": {"fleet": "rollouts"},
            "waves": [{"count": 2}, {"percent": 100}],
            "soak_s": 2,
            "abort": {"failure_percent": 0, "min_devices": 1, "wave_timeout_s": 120},
            "offline_timeout_s": 30,
        }
    )
    assert [w["size"] for w in rollout["waves"]] == [2, 4]
    assert rollout["state"] == "running"

    done = await fleet.until(rollout["id"], "completed")

    assert [(w["state"], w["counts"]) for w in done["waves"]] == [
        ("passed", {"healthy": 2}),
        ("passed", {"healthy": 4}),
    ]
    assert all(d["previous_version_id"] is None for d in done["devices"])
    for agent in fleet.agents:
        deployment = await running_on(fleet, agent.device_id)
        assert (deployment["state"], deployment["running_version_id"]) == ("running", fleet.v1)
    history = await fleet.get(f"{fleet.deployer}/v1/rollouts/{rollout['id']}/history")
    kinds = [e["kind"] for e in history["items"]]
    assert kinds[0] == "created"
    assert kinds.count("wave_started") == 2
    assert kinds.count("wave_passed") == 2
    assert kinds[-1] == "completed"
    listed = await fleet.get(f"{fleet.deployer}/v1/rollouts?state=completed")
    assert rollout["id"] in [r["id"] for r in listed["items"]]


@pytest.mark.timeout(300)
async def test_a_never_healthy_version_aborts_after_the_canary_and_rolls_it_back(
    fleet: Fleet,
) -> None:
    targets = [fleet.device(i) for i in range(4)]
    rollout = await fleet.create_rollout(
        {
            "version_id": fleet.bad,
            "device_ids": targets,
            "waves": [{"selector": {"ring": "canary"}}, {"percent": 100}],
            "soak_s": 2,
            "abort": {"failure_percent": 0, "min_devices": 1, "wave_timeout_s": 120},
            "offline_timeout_s": 30,
        }
    )
    assert [w["size"] for w in rollout["waves"]] == [2, 2]

    aborted = await fleet.until(rollout["id"], "aborted")

    assert "failed" in aborted["reason"]
    history = await fleet.get(f"{fleet.deployer}/v1/rollouts/{rollout['id']}/history")
    failures = [e for e in history["items"] if e["kind"] == "device_failed"]
    assert failures, history
    assert {e["device_id"] for e in failures} <= set(targets[:2])
    print("canary failure:", failures[0]["message"])
    by_device = {d["device_id"]: d for d in aborted["devices"]}
    for canary in targets[:2]:
        assert by_device[canary]["state"] == "rolled_back", by_device[canary]
        assert by_device[canary]["previous_version_id"] == fleet.v1
    for later in targets[2:]:
        assert by_device[later]["state"] == "skipped"
        assert by_device[later]["deployment_id"] is None
    # Every canary device runs version 1 again; the others never left it.
    for device_id in targets:

        async def back(device_id: str = device_id) -> bool:
            deployment = await running_on(fleet, device_id)
            return bool(
                deployment["state"] == "running"
                and deployment["version_id"] == fleet.v1
                and deployment["running_version_id"] == fleet.v1
            )

        await wait_for(back, timeout=STEP_TIMEOUT_S, interval=0.5)


@pytest.mark.timeout(300)
async def test_an_offline_device_is_skipped_without_stalling_its_wave(fleet: Fleet) -> None:
    silent = fleet.agents[5]
    _, process, _ = next(p for p in fleet.processes if p[0] == silent.name)
    await fleet.commands.stop_process(process)
    await asyncio.sleep(4)  # longer than the rollout's offline timeout

    rollout = await fleet.create_rollout(
        {
            "version_id": fleet.v2,
            "device_ids": [fleet.device(4), silent.device_id],
            "waves": [{"count": 2}],
            "soak_s": 1,
            "abort": {"failure_percent": 50, "min_devices": 1, "wave_timeout_s": 120},
            "offline_timeout_s": 3,
        }
    )
    done = await fleet.until(rollout["id"], "completed")

    by_device = {d["device_id"]: d for d in done["devices"]}
    assert by_device[silent.device_id]["state"] == "skipped"
    assert "offline" in by_device[silent.device_id]["reason"]
    assert by_device[fleet.device(4)]["state"] == "healthy"
    assert (await running_on(fleet, fleet.device(4)))["running_version_id"] == fleet.v2
    assert (await running_on(fleet, silent.device_id))["version_id"] == fleet.v1


@pytest.mark.timeout(300)
async def test_a_paused_rollout_starts_no_wave_until_resumed(fleet: Fleet) -> None:
    body = {
        "version_id": fleet.v2,
        "device_ids": [fleet.device(2), fleet.device(3)],
        "waves": [{"count": 1}, {"count": 1}],
        "soak_s": 1,
        "offline_timeout_s": 30,
    }
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await fleet.http.post(
        f"{fleet.deployer}/v1/rollouts", json=body, headers={**fleet.headers, **key}
    )
    assert first.status_code == 201, first.text
    rollout = first.json()
    # A retried create answers the first rollout (not a 409 for its own devices).
    retried = await fleet.http.post(
        f"{fleet.deployer}/v1/rollouts", json=body, headers={**fleet.headers, **key}
    )
    assert (retried.status_code, retried.json()["id"]) == (201, rollout["id"])
    paused = await fleet.post(f"{fleet.deployer}/v1/rollouts/{rollout['id']}/pause", {}, status=202)
    assert paused["state"] == "paused"
    await asyncio.sleep(4)
    held = await fleet.rollout(rollout["id"])
    assert held["state"] == "paused"
    assert held["current_wave"] == 0
    assert held["waves"][1]["counts"] == {"waiting": 1}
    await fleet.post(f"{fleet.deployer}/v1/rollouts/{rollout['id']}/pause", {}, status=409)

    resumed = await fleet.post(
        f"{fleet.deployer}/v1/rollouts/{rollout['id']}/resume", {}, status=202
    )
    assert resumed["state"] == "running"
    done = await fleet.until(rollout["id"], "completed")

    assert [w["counts"] for w in done["waves"]] == [{"healthy": 1}, {"healthy": 1}]
    history = await fleet.get(f"{fleet.deployer}/v1/rollouts/{rollout['id']}/history")
    kinds = [e["kind"] for e in history["items"]]
    assert kinds.index("paused") < kinds.index("resumed") < kinds.index("completed")


@pytest.mark.timeout(300)
async def test_a_second_rollout_for_the_same_device_is_a_409_naming_it(fleet: Fleet) -> None:
    busy = fleet.agents[0]
    first = await fleet.create_rollout(
        {
            "version_id": fleet.v2,
            "device_ids": [busy.device_id],
            "waves": [{"count": 1}],
            "soak_s": 600,
            "offline_timeout_s": 30,
        }
    )
    response = await fleet.http.post(
        f"{fleet.deployer}/v1/rollouts",
        json={
            "version_id": fleet.v2,
            "device_ids": [fleet.device(1), busy.device_id],
            "waves": [{"percent": 100}],
        },
        headers=fleet.headers,
    )
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert busy.name in problem["detail"]
    assert [d["device_id"] for d in problem["devices"]] == [busy.device_id]

    aborted = await fleet.post(f"{fleet.deployer}/v1/rollouts/{first['id']}/abort", {}, status=202)
    assert aborted["state"] in ("aborting", "aborted")
    await fleet.until(first["id"], "aborted")
    # Free again: the device takes the next rollout.
    again = await fleet.create_rollout(
        {"version_id": fleet.v1, "device_ids": [busy.device_id], "waves": [{"count": 1}]}
    )
    await fleet.post(f"{fleet.deployer}/v1/rollouts/{again['id']}/abort", {}, status=202)


async def cli(fleet: Fleet, *args: str) -> tuple[int, str, str]:
    """Run `modelyard ARGS` with a config of its own; return exit code, stdout and stderr."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")},
        "MODELYARD_CONFIG": str(fleet.tmp / "cli" / "config.yaml"),
        "MODELYARD_JWT_SECRET": TEST_JWT_SECRET,
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "modelyard"),
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT_S)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.mark.timeout(300)
async def test_the_cli_creates_a_rollout_and_watches_it_to_its_end(fleet: Fleet) -> None:
    login = await cli(
        fleet,
        *("login", "--dev", "--sub", "carol", "--role", "admin", "--workspace", WORKSPACE),
        *("--registry-url", fleet.registry, "--deployer-url", fleet.deployer),
        *("--gateway-url", fleet.gateway),
    )
    assert login[0] == 0, login

    code, out, err = await cli(
        fleet,
        *("rollout", "create", fleet.v1, "--device", "device-2", "--device", "device-3"),
        *("--wave", "1", "--wave", "100%", "--soak", "1", "--offline-timeout", "30", "--watch"),
    )

    assert code == 0, (out, err)
    assert "wave 1: passed" in out, out
    assert "wave 2: passed" in out, out
    assert "completed" in out
    listed = await cli(fleet, "rollout", "list", "--state", "completed", "-o", "json")
    newest = json.loads(listed[1])[0]
    assert newest["created_by"] == "carol"
    shown = await cli(fleet, "rollout", "get", newest["id"][:8], "-o", "json")
    assert [w["counts"] for w in json.loads(shown[1])["waves"]] == [{"healthy": 1}, {"healthy": 1}]
    bad = await cli(fleet, "rollout", "create", fleet.v1, "--device", "device-2", "--wave", "50x")
    assert bad[0] == 2
    assert "--wave takes N, P% or label=value" in bad[2]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device_ids": ["DEVICE"]}, "waves"),
        ({"device_ids": ["DEVICE"], "selector": {"a": "b"}, "waves": [{"count": 1}]}, None),
        ({"device_ids": ["DEVICE"], "waves": [{"count": 1, "percent": 5}]}, None),
        ({"device_ids": ["DEVICE"], "waves": [{"count": 1}, {"selector": {"a": "b"}}]}, None),
        ({"device_ids": ["DEVICE"], "waves": [{"percent": 150}]}, "percent"),
        ({"device_ids": ["DEVICE"], "waves": [{"count": 1}], "soak_s": -1}, "soak_s"),
        ({"selector": {"ring": "nowhere"}, "waves": [{"count": 1}]}, "selector"),
        ({"device_ids": ["DEVICE"], "waves": [{"selector": {"ring": "none"}}]}, "selector"),
    ],
)
async def test_bad_bodies_are_422_problems(
    fleet: Fleet, body: dict[str, Any], field: str | None
) -> None:
    if "device_ids" in body:
        body = {**body, "device_ids": [fleet.device(4)]}
    response = await fleet.http.post(
        f"{fleet.deployer}/v1/rollouts",
        json={"version_id": fleet.v1, **body},
        headers=fleet.headers,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422
    assert problem["errors"]
    if field is not None:
        assert any(field in [str(p) for p in e["loc"]] for e in problem["errors"]), problem
