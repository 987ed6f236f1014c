"""Registry and deployer chaos: kill -9 the services, restart RabbitMQ and PostgreSQL, mid-stream.

Everything is real: the registry and the deployer run as processes (`modelyard-registry serve`,
`modelyard-deployer serve`) against a private PostgreSQL and a private RabbitMQ node that this
scenario starts, restarts and stops.
While a stream of model writes (registry) and deployment commands (deployer) runs, the timeline
kills the registry (-9), restarts RabbitMQ, restarts PostgreSQL (immediate shutdown) and kills the
deployer (-9). Then it checks: every acknowledged write persists, every event of an acknowledged
write arrives (duplicates only with the same id), every accepted command reaches the device's
queue, and the deployment's generation is the last accepted command's.

`python tests/chaos/services_chaos.py [--seconds 14]` prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from chaoskit import Proc, print_table

from modelyard_common.auth import issue_token
from modelyard_common.contracts import DEVICES_EXCHANGE, EVENTS_EXCHANGE
from modelyard_common.events import CloudEvent
from modelyard_common.messaging import Binding, Broker
from modelyard_testkit.servers import PrivatePostgres, PrivateRabbit, free_port

# The deployer suite's test project and manifest (one definition for both).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "services" / "deployer" / "tests"))
from deployer_testkit import DEFAULT_MANIFEST, project_zip  # noqa: E402

PYTHON = sys.executable
JWT_SECRET = "chaos-secret-0123456789abcdefghijklmnop"
WORKSPACE = "chaos"
HEADERS = {
    "Authorization": "Bearer "
    + issue_token(secret=JWT_SECRET, sub="chaos", roles=["admin"], workspace=WORKSPACE)
}


class Service(Proc):
    """One service as a process, killable with -9 and restartable on the same port."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(env, log_dir / f"{name}.log")
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self, *args: str) -> list[str]:
        return [str(Path(PYTHON).parent / f"modelyard-{self.name}"), *args]

    def argv(self) -> list[str]:
        return self.command("serve", "--port", str(self.port))

    def migrate(self) -> None:
        subprocess.run(self.command("migrate"), env=self.env, check=True, capture_output=True)

    async def ready(self, http: httpx.AsyncClient, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{self.url}/readyz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                assert self.log is not None
                tail = self.log.read_text(errors="replace").splitlines()[-20:]
                raise RuntimeError(f"{self.name} not ready:\n" + "\n".join(tail))
            await asyncio.sleep(0.2)


@dataclass
class Figures:
    """What the scenario measured."""

    writes_attempted: int = 0
    writes_acknowledged: int = 0
    writes_persisted: int = 0
    events_expected: int = 0
    events_arrived: int = 0
    deliveries: int = 0
    duplicate_deliveries: int = 0
    events_with_two_ids: int = 0
    commands_attempted: int = 0
    commands_accepted: int = 0
    commands_delivered: int = 0
    commands_refused: int = 0
    commands_unknown: int = 0
    final_generation: int = 0
    last_accepted_generation: int = 0
    final_generation_ok: bool = False
    faults: list[str] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    converged_s: float = 0.0

    def row(self) -> dict[str, Any]:
        return {
            "writes acked / persisted": f"{self.writes_acknowledged} / {self.writes_persisted}",
            "writes refused during faults": self.writes_attempted - self.writes_acknowledged,
            "events expected / arrived": f"{self.events_expected} / {self.events_arrived}",
            "duplicate deliveries (same id)": self.duplicate_deliveries,
            "events with 2 ids": self.events_with_two_ids,
            "commands accepted / delivered": f"{self.commands_accepted} / "
            f"{self.commands_delivered}",
            "commands refused": self.commands_refused,
            "generation last 202 / final": f"{self.last_accepted_generation} / "
            f"{self.final_generation}",
            "commands with unknown outcome": self.commands_unknown,
            "converged after s": round(self.converged_s, 1),
            "faults": "; ".join(self.faults),
        }


async def _retry(call: Any, within: float = 60) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(httpx.HTTPError):
            r: httpx.Response = await call()
            if r.status_code < 300:
                return r
        if time.monotonic() > deadline:
            raise RuntimeError("setup call never succeeded")
        await asyncio.sleep(0.3)


async def run(seconds: float = 14.0) -> Figures:
    figures = Figures()
    tmp = Path(tempfile.mkdtemp(prefix="modelyard-chaos-"))
    pg = await asyncio.to_thread(lambda: PrivatePostgres().start())
    rabbit = await asyncio.to_thread(lambda: PrivateRabbit().start())
    services: list[Service] = []
    brokers: list[Broker] = []
    try:
        conn = await asyncpg.connect(pg.admin_url.replace("+asyncpg", ""))
        await conn.execute("CREATE DATABASE modelyard_chaos")
        await conn.close()
        env = {
            **os.environ,
            "MODELYARD_ENV": "dev",
            "MODELYARD_DATABASE_URL": pg.admin_url.rsplit("/", 1)[0] + "/modelyard_chaos",
            "MODELYARD_AMQP_URL": rabbit.url,
            "MODELYARD_JWT_SECRET": JWT_SECRET,
            "MODELYARD_LOG_JSON": "false",
            "MODELYARD_OUTBOX_POLL_INTERVAL_S": "0.5",
            "MODELYARD_DEPLOYER_ARTIFACT_DIR": str(tmp / "artifacts"),
            "MODELYARD_DEPLOYER_PUBLIC_URL": "http://deployer.chaos",
        }
        registry = Service("registry", env, tmp)
        deployer = Service("deployer", env, tmp)
        services += [registry, deployer]
        env["MODELYARD_REGISTRY_URL"] = registry.url
        env["MODELYARD_DEPLOYER_URL"] = deployer.url
        for s in services:
            await asyncio.to_thread(s.migrate)
            s.start()

        events: dict[str, list[CloudEvent]] = defaultdict(list)  # event id -> deliveries
        commands: list[dict[str, Any]] = []

        async def on_event(event: CloudEvent) -> None:
            events[event.id].append(event)

        async with httpx.AsyncClient(timeout=10, headers=HEADERS) as http:
            for s in services:
                await s.ready(http)
            capture = Broker(rabbit.url)
            brokers.append(capture)
            await capture.connect()
            await capture.consume("chaos-capture", [Binding(EVENTS_EXCHANGE, "#")], on_event)

            # Setup: a model, a version, a device and its deployment.
            body = {"name": "chaos-model", "learning_type": "supervised"}
            model = (await _retry(lambda: http.post(f"{registry.url}/v1/models", json=body))).json()
            version = (
                await _retry(
                    lambda: http.post(
                        f"{deployer.url}/v1/models/{model['id']}/versions",
                        files={"file": ("p.zip", project_zip())},
                        data={"manifest": json.dumps(DEFAULT_MANIFEST), "title": "chaos"},
                    )
                )
            ).json()
            device = (
                await _retry(lambda: http.post(f"{deployer.url}/v1/devices", json={"name": "edge"}))
            ).json()
            device_queue = f"device.{device['id']}"

            async def on_command(event: CloudEvent) -> None:
                commands.append({"id": event.id, **event.data})

            agent = Broker(rabbit.url)
            brokers.append(agent)
            await agent.connect()
            await agent.consume(device_queue, [Binding(DEVICES_EXCHANGE, device_queue)], on_command)
            deployment = (
                await _retry(
                    lambda: http.post(
                        f"{deployer.url}/v1/deployments",
                        json={"version_id": version["id"], "device_ids": [device["id"]]},
                    )
                )
            ).json()["items"][0]
            accepted_generations = [deployment["generation"]]
            acked: list[str] = []
            stop = asyncio.Event()

            async def writes() -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    figures.writes_attempted += 1
                    name = f"chaos-{i}-{uuid.uuid4().hex[:6]}"
                    try:
                        r = await http.post(
                            f"{registry.url}/v1/models",
                            json={"name": name, "learning_type": "supervised"},
                            headers={"Idempotency-Key": name},
                        )
                        if r.status_code == 201:
                            acked.append(r.json()["id"])
                            continue
                        figures.refusals[f"write {r.status_code}"] += 1
                    except httpx.HTTPError as exc:
                        figures.refusals[f"write {type(exc).__name__}"] += 1
                    await asyncio.sleep(0.05)

            async def actions() -> None:
                cycle = ("stop", "start", "restart")
                i = 0
                while not stop.is_set():
                    action = cycle[i % len(cycle)]
                    figures.commands_attempted += 1
                    try:
                        r = await http.post(
                            f"{deployer.url}/v1/deployments/{deployment['id']}/{action}"
                        )
                        if r.status_code == 202:
                            accepted_generations.append(r.json()["generation"])
                            i += 1
                        else:
                            figures.refusals[f"{action} {r.status_code}"] += 1
                            figures.commands_refused += 1
                            figures.commands_unknown += r.status_code >= 500
                    except httpx.HTTPError as exc:
                        figures.refusals[f"{action} {type(exc).__name__}"] += 1
                        figures.commands_refused += 1
                        # The answer was lost, not necessarily the action: it may have committed.
                        figures.commands_unknown += 1
                    await asyncio.sleep(0.1)

            async def kill_and_restart(service: Service) -> None:
                service.kill()
                await asyncio.sleep(1.0)
                service.start()

            faults = [
                ("registry kill -9", lambda: kill_and_restart(registry)),
                ("RabbitMQ restart", lambda: asyncio.to_thread(rabbit.restart)),
                ("PostgreSQL restart", lambda: asyncio.to_thread(pg.restart)),
                ("deployer kill -9", lambda: kill_and_restart(deployer)),
            ]

            async def timeline() -> None:
                step = seconds / (len(faults) + 3)
                for name, fault in faults:
                    await asyncio.sleep(step)
                    await fault()
                    figures.faults.append(name)
                await asyncio.sleep(step)
                stop.set()

            await asyncio.gather(writes(), actions(), timeline())
            figures.writes_acknowledged = len(acked)
            figures.commands_accepted = len(accepted_generations)
            for s in services:
                await s.ready(http)

            # Convergence: everything acknowledged must show up within a minute.
            started = time.monotonic()
            wanted_generations = set(accepted_generations)

            def created_ids() -> dict[str, set[str]]:
                """Return the event ids seen per created model."""
                found: dict[str, set[str]] = defaultdict(set)
                for deliveries in events.values():
                    if deliveries[0].type == "registry.model.created":
                        found[str(deliveries[0].subject)].add(deliveries[0].id)
                return found

            while True:
                created = created_ids()
                delivered = {int(c["generation"]) for c in commands}
                if (all(i in created for i in acked) and wanted_generations <= delivered) or (
                    time.monotonic() - started > 60
                ):
                    break
                await asyncio.sleep(0.5)
            figures.converged_s = time.monotonic() - started
            figures.events_expected = len(acked)
            figures.events_arrived = sum(1 for i in acked if i in created)
            figures.deliveries = sum(len(v) for v in events.values())
            figures.duplicate_deliveries = figures.deliveries - len(events)
            figures.events_with_two_ids = sum(1 for v in created_ids().values() if len(v) > 1)
            figures.commands_delivered = len(wanted_generations & delivered)
            persisted = 0
            for model_id in acked:
                r = await _retry(lambda m=model_id: http.get(f"{registry.url}/v1/models/{m}"))
                persisted += r.status_code == 200
            figures.writes_persisted = persisted
            current = (await http.get(f"{deployer.url}/v1/deployments/{deployment['id']}")).json()
            figures.final_generation = int(current["generation"])
            figures.last_accepted_generation = max(accepted_generations)
            # Every acknowledged action holds; beyond the last one, only actions whose answer was
            # lost (a kill or a restart mid-request) may have landed, each adding one generation.
            figures.final_generation_ok = (
                figures.last_accepted_generation
                <= figures.final_generation
                <= figures.last_accepted_generation + figures.commands_unknown
            )
    finally:
        for b in brokers:
            with contextlib.suppress(Exception):
                await b.close()
        for s in services:
            s.stop()
        await asyncio.to_thread(rabbit.close)
        await asyncio.to_thread(pg.close)
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=14.0)
    args = parser.parse_args()
    figures = asyncio.run(run(args.seconds))
    print_table([figures.row()], "Registry and deployer chaos")
    print("refusals while faulted:", dict(figures.refusals))


if __name__ == "__main__":
    main()
