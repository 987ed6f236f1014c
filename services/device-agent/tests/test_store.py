"""The desired-state store: newer generations only, durable, survives a bad file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from uuid import uuid4

from modelyard_testkit.agent import project_manifest

from modelyard_agent.store import DesiredStateStore
from modelyard_common.contracts import CommandAction, DesiredState, DeviceCommand, VersionSpec


def write(path: Path, text: str) -> None:
    path.write_text(text)


def file_names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def command(deployment_id: object, generation: int, desired: DesiredState) -> DeviceCommand:
    version = VersionSpec(
        id=uuid4(),
        model_id=uuid4(),
        model_name="m",
        number=1,
        sha256=hashlib.sha256(b"").hexdigest(),
        size_bytes=0,
        artifact_url="http://127.0.0.1:1/a",
        manifest=project_manifest(main="main.py", handlers=[{"name": "predict"}]),
    )
    return DeviceCommand.model_validate(
        {
            "deployment_id": deployment_id,
            "device_id": uuid4(),
            "generation": generation,
            "action": CommandAction.deploy,
            "desired_state": desired,
            "version": version,
        }
    )


async def test_only_newer_generations_are_accepted_and_survive_a_restart(tmp_path: Path) -> None:
    store = DesiredStateStore(tmp_path)
    store.load()
    deployment_id = uuid4()
    assert await store.accept(command(deployment_id, 2, DesiredState.running)) is not None
    assert await store.accept(command(deployment_id, 2, DesiredState.stopped)) is None
    assert await store.accept(command(deployment_id, 1, DesiredState.removed)) is None
    held = store.get(deployment_id)
    assert held is not None
    held.sequence = 7
    await store.save(held)

    reopened = DesiredStateStore(tmp_path)
    reopened.load()
    record = reopened.get(deployment_id)
    assert record is not None
    assert record.command.generation == 2
    assert record.command.desired_state is DesiredState.running
    assert record.sequence == 7
    assert file_names(tmp_path) == [f"{deployment_id}.json"]


async def test_a_corrupt_record_is_set_aside_not_fatal(tmp_path: Path) -> None:
    good = DesiredStateStore(tmp_path)
    good.load()
    deployment_id = uuid4()
    await good.accept(command(deployment_id, 1, DesiredState.running))
    write(tmp_path / f"{uuid4()}.json", "{not json")
    write(tmp_path / f".{deployment_id}.json.tmp123", "half a write")

    store = DesiredStateStore(tmp_path)
    store.load()
    assert [r.deployment_id for r in store.all()] == [deployment_id]
    suffixes = sorted(Path(name).suffix for name in file_names(tmp_path))
    assert suffixes == [".corrupt", ".json"]
