"""N simulated devices against one deployer replica: fan-out, reports, heartbeats, resources.

Starts one real deployer (`modelyard-deployer serve`, consumers on) on a fresh database and a
broker vhost of its own, registers N devices over HTTP, and runs the simulated fleet of
`fleet.py` against it: every device heartbeats at the agent's interval, one deployment goes to
all of them, each downloads the zip and reports the whole state sequence. Then a burst of
heartbeats probes how many the replica absorbs per second. Prints, per N: the time to fan the
deployment out, the report-processing rate, the deployer's CPU and RSS, the deepest broker queue
and the most database connections.

    .venv/bin/python services/deployer/bench/bench_devices.py [--devices 100,1000]

Needs PostgreSQL as the tests do (MODELYARD_BENCH_ADMIN_DATABASE_URL overrides the local
default). RabbitMQ: a private broker node of its own (the machine's `rabbitmq-server`, on free
ports, in a temporary directory, with its management API: the deployer makes each device's
broker login there), so thousands of quorum queues neither load nor depend on a shared broker;
MODELYARD_BENCH_AMQP_URL and MODELYARD_BENCH_MANAGEMENT_URL (an administrator's logins) point
the bench at an existing broker instead. Either way it works in a vhost of its own, deleted at
the end with every device login made in it.
MODELYARD_BENCH_DEVICES sets the fleet sizes too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
import asyncpg
import httpx
import psutil
from bench_upload import (
    ADMIN_URL,
    admin_headers,
    drop_database,
    running_deployer,
)
from fleet import REPORTED_STATES, Fleet
from modelyard_agent.settings import AgentSettings
from modelyard_testkit.servers import free_port
from modelyard_testkit.testing import recreate_database, wait_for_port

from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.device_identity import BROKER_USER_PREFIX
from modelyard_common.events import CloudEvent
from modelyard_common.messaging import Broker
from modelyard_common.outbox import asyncpg_dsn

AMQP_URL = os.environ.get("MODELYARD_BENCH_AMQP_URL")
MANAGEMENT_URL = os.environ.get(
    "MODELYARD_BENCH_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672"
)
WORKSPACE = "bench"
QUEUE_PREFIX = "deployer-bench"
MiB = 1024 * 1024


@dataclass
class Peaks:
    """The highest values the samplers saw, and the deployer's CPU seconds at marks."""

    rss_mib: float = 0.0
    queue_depth: dict[str, int] = field(default_factory=dict)
    db_connections: int = 0


@dataclass
class Row:
    devices: int
    register_s: float = 0.0
    steady_cpu_pct: float = 0.0
    fanout_s: float = 0.0
    create_s: float = 0.0
    reports: int = 0
    reports_per_s: float = 0.0
    all_running_s: float = 0.0
    deploy_cpu_pct: float = 0.0
    heartbeats_per_s: float = 0.0
    burst_cpu_pct: float = 0.0
    download_retries: dict[str, int] = field(default_factory=dict)
    peaks: Peaks = field(default_factory=Peaks)


def progress(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BenchBroker:
    """A broker the bench may use: its AMQP URL (an administrator's login) and management API."""

    amqp_url: str
    management_url: str


@contextlib.contextmanager
def private_broker(workdir: Path) -> Iterator[BenchBroker]:
    """Run a RabbitMQ node of the bench's own (with its management API) on free ports."""
    server = shutil.which("rabbitmq-server", path="/usr/lib/rabbitmq/bin") or shutil.which(
        "rabbitmq-server"
    )
    if server is None:
        raise SystemExit("rabbitmq-server is needed (apt package rabbitmq-server)")
    home = workdir / "rabbitmq"
    home.mkdir(parents=True, exist_ok=True)
    port, dist, management = free_port(), free_port(), free_port()
    # The deployer makes each device's broker login through the management API.
    (home / "enabled_plugins").write_text("[rabbitmq_management].\n")
    (home / "rabbitmq.conf").write_text(
        f"log.console = false\nmanagement.tcp.port = {management}\nmanagement.tcp.ip = 127.0.0.1\n"
    )
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": f"bench{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq"),
        "RABBITMQ_PID_FILE": str(home / "rabbit.pid"),
    }
    process = subprocess.Popen(
        [server],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=90, process=process)
        wait_for_port(management, timeout=90, process=process)
        progress(f"private RabbitMQ node on port {port} (management API on {management})")
        yield BenchBroker(
            f"amqp://guest:guest@127.0.0.1:{port}/", f"http://guest:guest@127.0.0.1:{management}"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def bench_broker(workdir: Path) -> Iterator[BenchBroker]:
    """Yield the broker the bench uses: MODELYARD_BENCH_AMQP_URL's, else a private node."""
    if AMQP_URL:
        yield BenchBroker(AMQP_URL, MANAGEMENT_URL)
    else:
        with private_broker(workdir) as broker:
            yield broker


@contextlib.contextmanager
def bench_vhost(broker: BenchBroker) -> Iterator[str]:
    """Make a vhost of the bench's own; yield its AMQP URL; then delete it and device logins.

    The deployer makes one broker login per device it registers, with permissions on this
    vhost only: every login with permissions here that is a device's is deleted at the end.
    """
    name = f"modelyard-bench-{uuid.uuid4().hex[:8]}"
    parts = urlsplit(broker.management_url)
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api"
    vhost = quote(name, safe="")
    with httpx.Client(base_url=base, auth=auth, timeout=60) as api:
        api.put(f"/vhosts/{vhost}").raise_for_status()
        admin = auth[0]
        api.put(
            f"/permissions/{vhost}/{quote(admin, safe='')}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
        amqp = urlsplit(broker.amqp_url)
        try:
            yield urlunsplit((amqp.scheme, amqp.netloc, f"/{vhost}", "", ""))
        finally:
            permissions = api.get(f"/vhosts/{vhost}/permissions")
            users = [
                p["user"]
                for p in (permissions.json() if permissions.status_code == 200 else [])
                if p["user"].startswith(BROKER_USER_PREFIX)
            ]
            if users:
                api.post("/users/bulk-delete", json={"users": users}).raise_for_status()
            api.delete(f"/vhosts/{vhost}").raise_for_status()
            progress(f"broker: vhost {name} and {len(users)} device login(s) deleted")


@dataclass(frozen=True)
class FleetDeployer:
    """The deployer a fleet bench runs against (see `fleet_deployer`), and how to reach it."""

    port: int
    database_url: str
    amqp_url: str
    model_id: str
    interval_s: float
    pid: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> str:
        """The database's name, as `recreate_database` made it."""
        return self.database_url.rsplit("/", 1)[1]

    def fleet(self, identities: list[tuple[uuid.UUID, str]]) -> Fleet:
        """Return the simulated fleet of these registered devices, not yet logged in."""
        return Fleet(
            self.amqp_url,
            identities,
            deployer_url=self.base_url,
            heartbeat_interval_s=self.interval_s,
        )


@contextlib.contextmanager
def fleet_deployer(
    database: str,
    *,
    amqp_url: str,
    management_url: str,
    artifacts: Path,
    queue_prefix: str,
    interval_s: float,
    **settings: str,
) -> Iterator[FleetDeployer]:
    """Run a ready deployer for a fleet on a fresh database `database`; then stop it, drop that.

    It makes each device's broker login through `management_url`; devices heartbeat every
    `interval_s`. `settings` are more deployer settings by field name, as for `running_deployer`.
    """
    database_url = asyncio.run(recreate_database(ADMIN_URL, database))
    model_id = str(uuid.uuid4())
    port = free_port()
    try:
        with running_deployer(
            port,
            model_id=model_id,
            database_url=database_url,
            amqp_url=amqp_url,
            artifacts=artifacts,
            public_url=f"http://127.0.0.1:{port}",
            queue_prefix=queue_prefix,
            broker_management_url=management_url,
            heartbeat_interval_s=str(interval_s),
            **settings,
        ) as process:
            yield FleetDeployer(port, database_url, amqp_url, model_id, interval_s, process.pid)
    finally:
        asyncio.run(drop_database(database_url.rsplit("/", 1)[1]))


def project_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("main.py", "def predict(payload):\n    return payload\n")
        archive.writestr("weights.bin", os.urandom(64 * 1024))
    return buffer.getvalue()


class Samplers:
    """Samples the deployer's RSS, its queues' depth and the database's connections."""

    def __init__(self, pid: int, amqp_url: str, database: str) -> None:
        self.process = psutil.Process(pid)
        self.amqp_url = amqp_url
        self.database = database
        self.peaks = Peaks()
        self._task: asyncio.Task[None] | None = None

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    async def _run(self) -> None:
        connection = await aio_pika.connect(self.amqp_url)
        db = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
        try:
            channel = await connection.channel()
            queues = [
                await channel.declare_queue(f"{QUEUE_PREFIX}.{name}", passive=True)
                for name in ("deployment-reports", "device-heartbeats")
            ]
            while True:
                rss = self.process.memory_info().rss / MiB
                self.peaks.rss_mib = max(self.peaks.rss_mib, rss)
                for queue in queues:
                    declared = await channel.declare_queue(queue.name, passive=True)
                    depth = declared.declaration_result.message_count or 0
                    short = queue.name.removeprefix(f"{QUEUE_PREFIX}.")
                    self.peaks.queue_depth[short] = max(self.peaks.queue_depth.get(short, 0), depth)
                used = await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", self.database
                )
                self.peaks.db_connections = max(self.peaks.db_connections, int(used))
                await asyncio.sleep(0.25)
        finally:
            await db.close()
            await connection.close()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def approve(amqp_url: str, db: asyncpg.Connection, model_id: str) -> None:
    """Tell the deployer the model is approved, as the registry does (an event on the broker)."""
    broker = Broker(amqp_url)
    await broker.connect()
    try:
        event = CloudEvent(
            type="registry.model.approved",
            source="modelyard/registry",
            data={
                "id": model_id,
                "name": "bench-model",
                "archived": False,
                "workspace": WORKSPACE,
                "learning_type": "supervised",
                "approval": "approved",
                "updated_by": "bench",
            },
        )
        await broker.publish(event, exchange=EVENTS_EXCHANGE, routing_key=event.type)
    finally:
        await broker.close()

    async def projected() -> bool:
        approval = await db.fetchval(
            "SELECT approval FROM deployer.model_approvals WHERE model_id = $1",
            uuid.UUID(model_id),
        )
        return approval == "approved"

    await wait_until(projected, 30, "the model's approval to reach the deployer")


async def wait_until(predicate: Any, within: float, what: str) -> float:
    """Return the seconds until the async `predicate` holds; exit after `within` seconds."""
    started = time.monotonic()
    while not await predicate():
        if time.monotonic() - started > within:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def approved_version(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    amqp_url: str,
    db: asyncpg.Connection,
    model_id: str,
) -> str:
    """Upload the bench project as a version of `model_id`, approve the model; return its id."""
    upload = await http.post(
        f"/v1/models/{model_id}/versions",
        files={"file": ("p.zip", project_zip(), "application/zip")},
        data={
            "manifest": json.dumps(
                {"image": "python:3.11-slim", "main": "main.py", "handlers": [{"name": "p"}]}
            )
        },
        headers=headers,
    )
    upload.raise_for_status()
    await approve(amqp_url, db, model_id)
    return str(upload.json()["id"])


async def all_online(db: asyncpg.Connection, n: int) -> float:
    """Wait until `n` devices have heartbeated once; return how long it took."""

    async def online() -> bool:
        seen = await db.fetchval(
            "SELECT count(*) FROM deployer.devices WHERE last_seen_at IS NOT NULL"
        )
        return int(seen) >= n

    return await wait_until(online, 120, "every device's first heartbeat")


async def register(
    http: httpx.AsyncClient, n: int, headers: dict[str, str], *, concurrency: int = 20
) -> list[Any]:
    """Register `n` devices (`concurrency` at a time); return (id, token) pairs.

    Each gets its queues and its own broker login from the deployer, as real devices do.
    """
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> tuple[uuid.UUID, str]:
        async with gate:
            response = await http.post(
                "/v1/devices",
                json={"name": f"bench-{i}", "labels": {"fleet": "bench"}},
                headers=headers,
            )
        response.raise_for_status()
        body = response.json()
        return uuid.UUID(body["id"]), body["token"]

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def run_fleet(n: int, *, deployer: FleetDeployer, burst: int) -> Row:
    row = Row(devices=n)
    headers = admin_headers()
    db = await asyncpg.connect(asyncpg_dsn(deployer.database_url))
    samplers = Samplers(deployer.pid, deployer.amqp_url, deployer.database)
    async with httpx.AsyncClient(base_url=deployer.base_url, timeout=120) as http:
        started = time.monotonic()
        identities = await register(http, n, headers)
        row.register_s = time.monotonic() - started
        progress(f"N={n}: {n} devices registered in {row.register_s:.1f} s")
        version_id = await approved_version(http, headers, deployer.amqp_url, db, deployer.model_id)
        fleet = deployer.fleet(identities)
        await fleet.start()
        samplers.start()
        try:
            await all_online(db, n)
            progress(f"N={n}: fleet online; one heartbeat interval of steady state")

            # Steady state: heartbeats only, for one whole interval.
            cpu0, t0 = samplers.cpu_seconds(), time.monotonic()
            await asyncio.sleep(deployer.interval_s)
            row.steady_cpu_pct = 100 * (samplers.cpu_seconds() - cpu0) / (time.monotonic() - t0)

            # One deployment to every device.
            cpu0, t0 = samplers.cpu_seconds(), time.monotonic()
            created = await http.post(
                "/v1/deployments",
                json={"version_id": version_id, "selector": {"fleet": "bench"}},
                headers=headers,
            )
            row.create_s = time.monotonic() - t0
            if created.status_code >= 300:
                raise SystemExit(f"create_deployment answered {created.status_code}")

            async def all_commanded() -> bool:
                return fleet.stats.commands >= n

            await wait_until(all_commanded, 600, "every device's command")
            progress(f"N={n}: every device has its command")
            row.fanout_s = (fleet.stats.last_command_at or 0) - t0

            async def all_running() -> bool:
                running = await db.fetchval(
                    "SELECT count(*) FROM deployer.deployments"
                    " WHERE version_id = $1 AND state = 'running'",
                    uuid.UUID(version_id),
                )
                return int(running) >= n

            await wait_until(all_running, 900, "every deployment to run")
            progress(f"N={n}: every deployment runs; heartbeat burst of {burst}")
            done = time.monotonic()
            row.all_running_s = done - t0
            row.reports = fleet.stats.reports
            first = fleet.stats.first_report_at or t0
            row.reports_per_s = row.reports / max(done - first, 1e-6)
            row.deploy_cpu_pct = 100 * (samplers.cpu_seconds() - cpu0) / (done - t0)
            expected = n * len(REPORTED_STATES)
            if row.reports != expected:
                raise SystemExit(f"{row.reports} reports sent, {expected} expected")
            row.download_retries = dict(fleet.stats.download_retries)
            if fleet.download and fleet.stats.downloads != n:
                raise SystemExit(f"{fleet.stats.downloads} downloads of {n} succeeded")

            # Capacity: a burst of heartbeats, absorbed as fast as the replica can.
            await asyncio.sleep(1)
            cpu0, t0 = samplers.cpu_seconds(), time.monotonic()
            await fleet.burst(burst)
            progress(f"N={n}: burst sent in {time.monotonic() - t0:.1f} s")

            async def drained() -> bool:
                channel = await probe.channel()
                queue = await channel.declare_queue(
                    f"{QUEUE_PREFIX}.device-heartbeats", passive=True
                )
                depth = queue.declaration_result.message_count or 0
                await channel.close()
                return depth == 0

            probe = await aio_pika.connect(deployer.amqp_url)
            try:
                await wait_until(drained, 600, "the heartbeat burst to drain")
            finally:
                await probe.close()
            elapsed = time.monotonic() - t0
            row.heartbeats_per_s = burst / elapsed
            row.burst_cpu_pct = 100 * (samplers.cpu_seconds() - cpu0) / elapsed
        finally:
            await samplers.stop()
            await fleet.stop()
            await db.close()
    row.peaks = samplers.peaks
    return row


def run_one(n: int, *, interval_s: float, burst: int, workdir: Path) -> Row:
    with bench_broker(workdir / f"broker-{n}") as broker, bench_vhost(broker) as amqp_url:
        return run_against(
            n,
            amqp_url=amqp_url,
            management_url=broker.management_url,
            interval_s=interval_s,
            burst=burst,
            workdir=workdir,
        )


def run_against(
    n: int, *, amqp_url: str, management_url: str, interval_s: float, burst: int, workdir: Path
) -> Row:
    with fleet_deployer(
        "modelyard_bench_devices",
        amqp_url=amqp_url,
        management_url=management_url,
        artifacts=workdir / f"artifacts-{n}",
        queue_prefix=QUEUE_PREFIX,
        interval_s=interval_s,
    ) as deployer:
        return asyncio.run(run_fleet(n, deployer=deployer, burst=burst))


def print_table(rows: list[Row], interval_s: float) -> None:
    print()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"One deployer replica, simulated devices, heartbeat every {interval_s:g} s "
        f"(machine: {os.cpu_count()} cores, load average now {load})"
    )
    header = (
        "| devices | fan-out s | create s | reports/s | all running s | CPU % idle fleet "
        "| CPU % deploy | peak RSS MiB | max queue (reports / heartbeats) | max DB conns "
        "| heartbeats/s max | devices at that rate |"
    )
    print(header)
    print("|---" * 12 + "|")
    for r in rows:
        capacity = r.heartbeats_per_s * interval_s
        depth = r.peaks.queue_depth
        print(
            f"| {r.devices} | {r.fanout_s:.2f} | {r.create_s:.2f} | {r.reports_per_s:.0f} "
            f"| {r.all_running_s:.2f} | {r.steady_cpu_pct:.1f} | {r.deploy_cpu_pct:.0f} "
            f"| {r.peaks.rss_mib:.0f} "
            f"| {depth.get('deployment-reports', 0)} / {depth.get('device-heartbeats', 0)} "
            f"| {r.peaks.db_connections} | {r.heartbeats_per_s:.0f} | {capacity:,.0f} |"
        )
    print()
    print(
        "fan-out: POST /v1/deployments to the last device's command; create: the POST alone;"
        " reports/s: every report (5 per device) from the first sent to all deployments"
        " running; CPU % of one core; heartbeats/s max: a burst drained by the replica"
        " (CPU % during it shown below); devices at that rate = heartbeats/s max x interval."
    )
    for r in rows:
        print(
            f"  N={r.devices}: registered in {r.register_s:.1f} s; burst CPU "
            f"{r.burst_cpu_pct:.0f} %; download retries {r.download_retries or 'none'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--devices",
        default=os.environ.get("MODELYARD_BENCH_DEVICES", "100,1000"),
        help="comma-separated fleet sizes (5000 fits a 2-core machine only just)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=AgentSettings().heartbeat_interval_s,
        help="seconds between a device's heartbeats (default: the agent's)",
    )
    parser.add_argument("--burst", type=int, default=0, help="heartbeats in the capacity burst")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="deployer-fleet-bench-"))
    rows = []
    for n in (int(x) for x in args.devices.split(",") if x.strip()):
        burst = args.burst or max(3000, 3 * n)
        rows.append(run_one(n, interval_s=args.heartbeat_interval, burst=burst, workdir=workdir))
        print_table(rows, args.heartbeat_interval)


if __name__ == "__main__":
    main()
