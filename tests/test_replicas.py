"""Two replicas of registry, deployer and gateway behind nginx (round robin): one system.

Each replica is its own process; nginx (started here with its own config on free ports) balances
each service over its two replicas; the broker (a vhost of its own), PostgreSQL (a database of
its own) and an S3-compatible server (moto, the deployers' shared artifact store) are real. The
test shows: requests work whichever replica takes them (a zip uploaded through one deployer is
downloaded from the other); each event is published once and each device command sent once;
events of one routing key arrive in outbox order though two relays publish them; consumers
apply each event once, even when it is delivered twice; housekeeping runs on one replica of a
service and the gateway's health probes are not doubled; and killing a replica mid-run (kill -9,
creates in flight) loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import sys
import uuid
import zipfile
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from modelyard_common.contracts import DEPLOYMENT_REPORTED, DEVICES_EXCHANGE, EVENTS_EXCHANGE
from modelyard_common.device_identity import broker_username, device_amqp_url
from modelyard_common.events import new_event
from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.nginx import nginx_binary, nginx_config
from modelyard_testkit.testing import (
    S3_TEST_CREDENTIALS,
    TEST_ADMIN_DB_URL,
    TEST_JWT_SECRET,
    TEST_VHOST,
    EventCapture,
    bearer,
    delete_device_logins,
    ensure_management_api,
    ensure_vhost,
    free_port,
    recreate_database,
    s3_test_server,
    wait_for,
)

BIN = Path(sys.executable).parent
SERVICES = ("registry", "deployer", "gateway")
WORKSPACE = "replicas"
BUCKET = "modelyard-replicas"
HEALTH_INTERVAL_S = 1.0
MODEL = {
    "description": "A model made by the replicas test.",
    "learning_type": "supervised",
    "functionality": "fraud detection",
    "foundations": "gradient boosted trees",
    "provider": "in-house",
}
MANIFEST = {"image": "python:3.11-slim", "main": "main.py", "handlers": [{"name": "predict"}]}


def nginx_needed() -> str:
    found = nginx_binary()
    assert found, "nginx is needed (apt package `nginx`; .ci/run installs it)"
    return found


@dataclass
class Replica:
    service: str
    index: int
    port: int
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """Six service processes, nginx in front, and what the test needs to reach them."""

    tmp: Path
    env: dict[str, str]
    http: httpx.AsyncClient
    lb: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, list[Replica]] = field(default_factory=dict)
    nginx: asyncio.subprocess.Process | None = None
    headers: dict[str, str] = field(default_factory=lambda: bearer("admin", WORKSPACE))

    async def start_replica(self, service: str, index: int, port: int) -> Replica:
        log_path = self.tmp / f"{service}-{index}.log"
        log = await asyncio.to_thread(log_path.open, "ab")
        with log:
            process = await asyncio.create_subprocess_exec(
                str(BIN / f"modelyard-{service}"),
                "serve",
                "--port",
                str(port),
                env={**os.environ, **self.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        replica = Replica(service, index, port, process, log_path)
        self.replicas.setdefault(service, []).append(replica)
        return replica

    async def wait_ready(self, replica: Replica) -> None:
        async def ready() -> bool:
            if replica.process.returncode is not None:
                output = await asyncio.to_thread(replica.log_path.read_text, errors="replace")
                raise AssertionError(f"{replica.service}-{replica.index} exited:\n{output[-3000:]}")
            try:
                return (await self.http.get(f"{replica.url}/readyz", timeout=2)).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(ready, timeout=90, interval=0.2)

    def live(self, service: str) -> list[Replica]:
        return [r for r in self.replicas[service] if r.process.returncode is None]

    async def kill(self, replica: Replica) -> None:
        """kill -9 the replica (its whole process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.process.pid, signal.SIGKILL)
        await replica.process.wait()

    async def housekeeping_rounds(self, replica: Replica) -> float:
        metrics = (await self.http.get(f"{replica.url}/metrics")).text
        found = re.search(
            rf'^modelyard_housekeeping_rounds_total\{{service="{replica.service}"\}} (\S+)$',
            metrics,
            re.M,
        )
        return float(found.group(1)) if found else 0.0


def balancer_config(tmp: Path, upstreams: dict[str, tuple[int, list[int]]]) -> str:
    """Return an nginx config: per service one listen port, round robin over its replicas."""
    blocks = []
    for service, (listen, ports) in upstreams.items():
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in ports)
        blocks.append(
            f"""
  upstream {service} {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{listen};
    location / {{
      proxy_pass http://{service};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffering off;
      client_max_body_size 0;
      # A replica that dies before answering: the request goes to the other one. Creates carry
      # an Idempotency-Key, so even a POST the dead one had already committed is not doubled.
      proxy_next_upstream error timeout http_502 non_idempotent;
      proxy_next_upstream_tries 2;
      proxy_connect_timeout 2s;
      add_header X-Upstream $upstream_addr always;
    }}
  }}"""
        )
    return nginx_config(tmp, "".join(blocks), access_log=True)


class ProbedBackend:
    """A model backend stand-in that counts the gateway's health probes."""

    def __init__(self) -> None:
        self.probes = 0
        self.port = free_port()

    def app(self) -> Starlette:
        async def models(request: Request) -> JSONResponse:
            self.probes += 1
            return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model"}]})

        return Starlette(routes=[Route("/v1/models", models)])


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    tmp = tmp_path_factory.mktemp("replicas")
    name = f"modelyard_replicas{uuid.uuid4().hex[:6]}"
    vhost = f"{TEST_VHOST}-replicas"
    await asyncio.to_thread(ensure_vhost, vhost)
    await asyncio.to_thread(ensure_management_api)
    database_url = await recreate_database(TEST_ADMIN_DB_URL, name)
    ports = {s: [free_port(), free_port()] for s in SERVICES}
    listen = {s: free_port() for s in SERVICES}
    lb = {s: f"http://127.0.0.1:{listen[s]}" for s in SERVICES}
    with s3_test_server(BUCKET, log_path=tmp / "moto.log") as s3_url:
        env = {
            "MODELYARD_DATABASE_URL": database_url,
            "MODELYARD_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            "MODELYARD_JWT_SECRET": TEST_JWT_SECRET,
            "MODELYARD_REGISTRY_URL": lb["registry"],
            "MODELYARD_DEPLOYER_URL": lb["deployer"],
            "MODELYARD_LOG_JSON": "false",
            "MODELYARD_OUTBOX_POLL_INTERVAL_S": "0.2",
            "MODELYARD_HOUSEKEEPING_INTERVAL_S": "0.5",
            "MODELYARD_DEPLOYER_ARTIFACT_BACKEND": "s3",
            "MODELYARD_DEPLOYER_S3_BUCKET": BUCKET,
            "MODELYARD_DEPLOYER_S3_ENDPOINT_URL": s3_url,
            "MODELYARD_DEPLOYER_S3_REGION": "us-east-1",
            "MODELYARD_DEPLOYER_S3_ACCESS_KEY_ID": S3_TEST_CREDENTIALS["access_key_id"],
            "MODELYARD_DEPLOYER_S3_SECRET_ACCESS_KEY": S3_TEST_CREDENTIALS["secret_access_key"],
            "MODELYARD_DEPLOYER_ARTIFACT_DIR": str(tmp / "spool"),
            # moto dates every multipart upload in 2010: with any real age limit the (twice a
            # second) sweep would abort uploads in progress, which real S3 dates correctly.
            "MODELYARD_DEPLOYER_ARTIFACT_STAGING_MAX_AGE_H": str(24 * 365 * 100),
            "MODELYARD_GATEWAY_HEALTH_INTERVAL_S": str(HEALTH_INTERVAL_S),
            "MODELYARD_GATEWAY_CONFIG_REFRESH_S": "1",
            "MODELYARD_GATEWAY_STATE_REFRESH_S": "1",
        }
        async with httpx.AsyncClient(timeout=30) as http:
            cluster = Cluster(tmp=tmp, env=env, http=http, lb=lb)
            try:
                for service in SERVICES:
                    process = await asyncio.create_subprocess_exec(
                        str(BIN / f"modelyard-{service}"),
                        "migrate",
                        env={**os.environ, **env},
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.STDOUT,
                    )
                    output, _ = await process.communicate()
                    assert process.returncode == 0, output.decode()[-3000:]
                for service in SERVICES:
                    for index, port in enumerate(ports[service]):
                        await cluster.start_replica(service, index, port)
                for replicas in cluster.replicas.values():
                    for replica in replicas:
                        await cluster.wait_ready(replica)
                config = tmp / "nginx.conf"
                upstreams = {s: (listen[s], ports[s]) for s in SERVICES}
                config.write_text(balancer_config(tmp, upstreams))
                cluster.nginx = await asyncio.create_subprocess_exec(
                    nginx_needed(),
                    "-c",
                    str(config),
                    "-p",
                    str(tmp),
                    "-e",
                    str(tmp / "nginx-error.log"),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )

                async def balanced() -> bool:
                    try:
                        answers = [await http.get(f"{lb[s]}/healthz") for s in SERVICES]
                    except httpx.TransportError:
                        return False
                    return all(a.status_code == 200 for a in answers)

                await wait_for(balanced, timeout=30, interval=0.1)
                yield cluster
            finally:
                if cluster.nginx is not None and cluster.nginx.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(cluster.nginx.pid, signal.SIGTERM)
                    await cluster.nginx.wait()
                for replicas in cluster.replicas.values():
                    for replica in replicas:
                        if replica.process.returncode is None:
                            with contextlib.suppress(ProcessLookupError):
                                os.killpg(replica.process.pid, signal.SIGTERM)
                for replicas in cluster.replicas.values():
                    for replica in replicas:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(replica.process.wait(), 15)
                        if replica.process.returncode is None:
                            await cluster.kill(replica)
                        tail = replica.log_path.read_text(errors="replace").splitlines()[-15:]
                        print(f"--- {replica.service}-{replica.index}", *tail, sep="\n")
                moto_log = tmp / "moto.log"
                if moto_log.exists():
                    failures = [
                        line for line in moto_log.read_text().splitlines() if " 500 " in line
                    ]
                    print("--- S3 server errors", *failures[-10:], sep="\n")
                connection = await asyncpg.connect(asyncpg_dsn(TEST_ADMIN_DB_URL))
                try:
                    await connection.execute(
                        f'DROP DATABASE IF EXISTS "{name}{_suffix()}" WITH (FORCE)'
                    )
                finally:
                    await connection.close()
                await asyncio.to_thread(delete_device_logins, vhost)
                process = await asyncio.create_subprocess_exec(
                    "rabbitmqctl",
                    "-q",
                    "delete_vhost",
                    vhost,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                await process.wait()


def _suffix() -> str:
    return os.environ.get("MODELYARD_TEST_DB_SUFFIX", "")


@pytest.fixture(scope="module")
async def events(cluster: Cluster) -> AsyncIterator[EventCapture]:
    async with EventCapture(cluster.env["MODELYARD_AMQP_URL"]) as capture:
        yield capture


def project_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("main.py", "def predict(payload):\n    return payload\n")
        archive.writestr("weights.bin", os.urandom(300_000))
    return buffer.getvalue()


async def upload(cluster: Cluster, model_id: str, archive: bytes) -> httpx.Response:
    """Upload a version of a model through the balancer."""
    return await cluster.http.post(
        f"{cluster.lb['deployer']}/v1/models/{model_id}/versions",
        headers=cluster.headers,
        data={"manifest": json.dumps(MANIFEST)},
        files={"file": ("p.zip", archive, "application/zip")},
    )


async def create_model(cluster: Cluster, name: str, key: str | None = None) -> httpx.Response:
    headers = {**cluster.headers, "Idempotency-Key": key or name}
    return await cluster.http.post(
        f"{cluster.lb['registry']}/v1/models", json={**MODEL, "name": name}, headers=headers
    )


async def test_requests_work_whichever_replica_takes_them(cluster: Cluster) -> None:
    served: Counter[str] = Counter()
    for service in SERVICES:
        for _ in range(6):
            response = await cluster.http.get(f"{cluster.lb[service]}/readyz")
            assert response.status_code == 200
            served[response.headers["x-upstream"]] += 1
    assert set(served) == {r.addr for rs in cluster.replicas.values() for r in rs}
    assert set(served.values()) == {3}  # round robin: each replica took half

    model = (await create_model(cluster, "replicated")).json()
    archive = project_zip()
    uploaded = await upload(cluster, model["id"], archive)
    assert uploaded.status_code == 201, uploaded.text
    url = f"{cluster.lb['deployer']}{uploaded.json()['artifact_url']}"
    downloads = [await cluster.http.get(url, headers=cluster.headers) for _ in range(2)]
    ranged = await cluster.http.get(url, headers={**cluster.headers, "Range": "bytes=1000-"})

    by = {d.headers["x-upstream"] for d in downloads}
    assert by == {r.addr for r in cluster.replicas["deployer"]}
    assert uploaded.headers["x-upstream"] in by
    assert all(d.status_code == 200 and d.content == archive for d in downloads)
    assert ranged.status_code == 206
    assert ranged.content == archive[1000:]


async def test_events_once_in_order_and_commands_once(
    cluster: Cluster, events: EventCapture
) -> None:
    names = [f"ordered-{i}-{uuid.uuid4().hex[:6]}" for i in range(16)]
    created = []
    for name in names:  # one after another: outbox order is creation order
        response = await create_model(cluster, name)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    published = await events.wait(type="registry.model.created", count=len(created), timeout=30)
    await asyncio.sleep(1.0)  # time for a duplicate to show up
    mine = [e for e in events.of(type="registry.model.created") if e["subject"] in created]
    assert [e["subject"] for e in mine] == created  # once each, in order across two relays
    assert len({e["id"] for e in published}) == len(published)

    # One device, one deployment: exactly one command reaches its queue.
    model_id = created[0]
    uploaded = await upload(cluster, model_id, project_zip())
    assert uploaded.status_code == 201, uploaded.text
    registered = await cluster.http.post(
        f"{cluster.lb['deployer']}/v1/devices",
        json={"name": "edge-1", "labels": {"site": "replicas"}},
        headers=cluster.headers,
    )
    assert registered.status_code == 201, registered.text
    device = registered.json()
    connection = await aio_pika.connect_robust(cluster.env["MODELYARD_AMQP_URL"])
    commands: list[dict[str, Any]] = []
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            f"device.{device['id']}",
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": "aimodels.dlx",
                "x-dead-letter-routing-key": f"device.{device['id']}",
                "x-delivery-limit": 5,
            },
        )
        exchange = await channel.declare_exchange(
            DEVICES_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await queue.bind(exchange, routing_key=f"device.{device['id']}")

        async def on_command(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            commands.append(json.loads(message.body))
            await message.ack()

        await queue.consume(on_command)
        deployment = await cluster.http.post(
            f"{cluster.lb['deployer']}/v1/deployments",
            json={"version_id": uploaded.json()["id"], "device_ids": [device["id"]]},
            headers={**cluster.headers, "Idempotency-Key": "deploy-once"},
        )
        assert deployment.status_code == 201, deployment.text
        (deployed,) = (
            deployment.json()["items"] if "items" in deployment.json() else [deployment.json()]
        )

        async def commanded() -> bool:
            return len(commands) >= 1

        await wait_for(commanded, timeout=20)
        await asyncio.sleep(1.5)  # a second relay publishing it again would show by now
        assert len(commands) == 1
        assert commands[0]["data"]["deployment_id"] == deployed["id"]

        # Consumers apply each event once: the same report delivered twice is one history entry.
        report = new_event(
            type=DEPLOYMENT_REPORTED,
            source=f"modelyard-agent/{device['id']}",
            subject=deployed["id"],
            data={
                "deployment_id": deployed["id"],
                "device_id": device["id"],
                "generation": commands[0]["data"]["generation"],
                "sequence": 1,
                "state": "downloading",
                "version_id": uploaded.json()["id"],
                "message": "fetching",
                "log_tail": [],
                "reported_at": "2026-01-01T00:00:00Z",
            },
        )
        # Reports count only from the device's own broker login (checked `user_id`).
        broker = cluster.env["MODELYARD_AMQP_URL"]
        as_device = await aio_pika.connect(device_amqp_url(broker, device["id"], device["token"]))
        try:
            device_channel = await as_device.channel()
            events_exchange = await device_channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
            for _ in range(2):
                await events_exchange.publish(
                    aio_pika.Message(
                        report.to_bytes(),
                        message_id=report.id,
                        content_type="application/cloudevents+json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        user_id=broker_username(device["id"]),
                    ),
                    routing_key=DEPLOYMENT_REPORTED,
                )
        finally:
            await as_device.close()
    finally:
        await connection.close()

    async def history() -> list[dict[str, Any]] | None:
        response = await cluster.http.get(
            f"{cluster.lb['deployer']}/v1/deployments/{deployed['id']}/history",
            headers=cluster.headers,
        )
        items = [h for h in response.json()["items"] if h.get("state") == "downloading"]
        return items or None

    await wait_for(history, timeout=20)
    await asyncio.sleep(1.5)
    assert len(await history() or []) == 1


async def test_housekeeping_and_health_probes_do_not_double_up(cluster: Cluster) -> None:
    for service in SERVICES:

        async def rounds_seen(service: str = service) -> bool:
            counts = [await cluster.housekeeping_rounds(r) for r in cluster.live(service)]
            return sum(counts) >= 3

        await wait_for(rounds_seen, timeout=30)
        counts = [await cluster.housekeeping_rounds(r) for r in cluster.live(service)]
        assert sorted(c > 0 for c in counts) == [False, True], (service, counts)

    backend = ProbedBackend()
    server = uvicorn.Server(
        uvicorn.Config(backend.app(), host="127.0.0.1", port=backend.port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        created = await cluster.http.post(
            f"{cluster.lb['gateway']}/v1/instances",
            json={
                "name": f"probed-{uuid.uuid4().hex[:6]}",
                "kind": "local",
                "host": "127.0.0.1",
                "port": backend.port,
                "protocol": "http",
                "upstream_model": "m",
            },
            headers=cluster.headers,
        )
        assert created.status_code == 201, created.text

        async def probed() -> bool:
            return backend.probes >= 2

        await wait_for(probed, timeout=30)
        start = backend.probes
        window_s = 8.0
        await asyncio.sleep(window_s)
        probes = backend.probes - start
        # Each replica checks every interval; the claim lets one of them probe per interval.
        assert probes <= window_s / (0.8 * HEALTH_INTERVAL_S) + 2, probes
        assert probes >= window_s / (2 * HEALTH_INTERVAL_S), probes
        await cluster.http.delete(
            f"{cluster.lb['gateway']}/v1/instances/{created.json()['id']}",
            headers=cluster.headers,
        )
    finally:
        server.should_exit = True
        await serving


async def test_killing_a_replica_mid_run_loses_nothing(
    cluster: Cluster, events: EventCapture
) -> None:
    names = [f"chaos-{i}-{uuid.uuid4().hex[:6]}" for i in range(30)]
    results: dict[str, str] = {}

    async def create_until_done(name: str) -> None:
        for _ in range(20):  # a client retries with the same Idempotency-Key
            try:
                response = await create_model(cluster, name, key=f"chaos-{name}")
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 201:
                results[name] = response.json()["id"]
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"{name} was never created")

    registry_victim = cluster.live("registry")[0]
    deployer_victim = cluster.live("deployer")[0]
    creates = [asyncio.create_task(create_until_done(n)) for n in names]
    await asyncio.sleep(0.3)
    await cluster.kill(registry_victim)
    await cluster.kill(deployer_victim)
    await asyncio.gather(*creates)

    assert len(set(results.values())) == len(names)  # each created once, none lost
    listed = await cluster.http.get(
        f"{cluster.lb['registry']}/v1/models",
        params={"limit": 200},
        headers=cluster.headers,
    )
    chaos = [m for m in listed.json()["items"] if m["name"].startswith("chaos-")]
    assert sorted(m["id"] for m in chaos) == sorted(results.values())
    await events.wait(type="registry.model.created", count=1, timeout=5)

    async def every_event_out() -> bool:
        seen = {e["subject"] for e in events.of(type="registry.model.created")}
        return set(results.values()) <= seen

    await wait_for(every_event_out, timeout=30)
    ids = Counter(
        e["subject"]
        for e in events.of(type="registry.model.created")
        if e["subject"] in results.values()
    )
    # A relay killed between publish and mark may publish a row again: same event id, which
    # consumers apply once. No event is lost, and no model has two different created events.
    per_model = {}
    for e in events.of(type="registry.model.created"):
        if e["subject"] in results.values():
            per_model.setdefault(e["subject"], set()).add(e["id"])
    assert set(ids) == set(results.values())
    assert all(len(v) == 1 for v in per_model.values())

    # The surviving deployer still serves what the killed one uploaded; housekeeping moves over.
    (survivor,) = cluster.live("deployer")
    model_id = next(iter(results.values()))
    archive = project_zip()
    uploaded = await upload(cluster, model_id, archive)
    assert uploaded.status_code == 201, uploaded.text
    # nginx may try the dead one first; the answer comes from the survivor.
    assert uploaded.headers["x-upstream"].split(", ")[-1] == survivor.addr
    download = await cluster.http.get(
        f"{survivor.url}{uploaded.json()['artifact_url']}", headers=cluster.headers
    )
    assert download.content == archive
    (registry_survivor,) = cluster.live("registry")
    before = await cluster.housekeeping_rounds(registry_survivor)

    async def took_over() -> bool:
        return await cluster.housekeeping_rounds(registry_survivor) > before + 1

    await wait_for(took_over, timeout=30)
