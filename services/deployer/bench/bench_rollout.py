"""A four-wave rollout over N simulated devices against one deployer replica.

Starts one real deployer (`modelyard-deployer serve`, consumers and rollout engine on) on a fresh
database and a broker vhost of its own, registers N devices over HTTP (each gets its own broker
login from the deployer, as real devices do at registration), logs every simulated device in as
itself (`fleet.py`: one connection per device, heartbeats at the agent's interval listing what
it holds with its health, commands answered like an agent: download, then `downloading` ...
`running`), then runs a rollout of one version in four waves (1 %, 10 %, 50 %, 100 %) and
prints per wave: its devices, its time (started to passed, by the rollout's own history), the
deployer's CPU seconds in it, and in all the deployer's peak RSS (`VmHWM` in /proc). The vhost
and every device login are deleted at the end.

    .venv/bin/python services/deployer/bench/bench_rollout.py [--devices 1000]

Needs PostgreSQL as the tests do (MODELYARD_BENCH_ADMIN_DATABASE_URL overrides the local
default). RabbitMQ: a private node of the bench's own with its management API (as
`bench_devices.py`); MODELYARD_BENCH_AMQP_URL and MODELYARD_BENCH_MANAGEMENT_URL (an
administrator's logins) point it at an existing broker instead.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
from bench_devices import (
    FleetDeployer,
    all_online,
    approved_version,
    bench_broker,
    bench_vhost,
    fleet_deployer,
    progress,
    register,
)
from bench_upload import admin_headers, cpu_seconds, memory_kib
from fleet import REPORTED_STATES, FleetStats

from modelyard_common.outbox import asyncpg_dsn

QUEUE_PREFIX = "deployer-rollout-bench"
# Cumulative shares of the fleet, as a rollout's waves say them: a canary, then three more.
WAVES = ({"percent": 1}, {"percent": 10}, {"percent": 50}, {"percent": 100})
SOAK_S = 1.0
ROLLOUT_INTERVAL_S = 1.0
# Registrations at a time: each makes the device's queues and broker login (management API).
REGISTER_CONCURRENCY = 40


def peak_rss_mib(pid: int) -> float:
    """Return a process's peak RSS so far (`VmHWM` in /proc/<pid>/status), in MiB."""
    return memory_kib(pid)["VmHWM"] / 1024


@dataclass
class WaveRow:
    wave: int
    devices: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    states: dict[str, int] = field(default_factory=dict)


@dataclass
class Result:
    devices: int
    register_s: float = 0.0
    register_cpu_s: float = 0.0
    connect_s: float = 0.0
    online_s: float = 0.0
    total_s: float = 0.0
    total_cpu_s: float = 0.0
    idle_cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    # What the fleet counted (commands, reports, heartbeats) when the rollout was done.
    fleet: FleetStats = field(default_factory=FleetStats)
    waves: list[WaveRow] = field(default_factory=list)
    # Whatever kept a device from `healthy` (the run then exits 1 after its table).
    problems: list[str] = field(default_factory=list)


async def run_rollout(n: int, *, deployer: FleetDeployer) -> Result:
    result = Result(devices=n)
    pid = deployer.pid
    headers = admin_headers(timedelta(hours=1))
    db = await asyncpg.connect(asyncpg_dsn(deployer.database_url))
    async with httpx.AsyncClient(base_url=deployer.base_url, timeout=120) as http:
        started, cpu0 = time.monotonic(), cpu_seconds(pid)
        identities = await register(http, n, headers, concurrency=REGISTER_CONCURRENCY)
        result.register_s = time.monotonic() - started
        result.register_cpu_s = cpu_seconds(pid) - cpu0
        progress(f"N={n}: registered (each with its broker login) in {result.register_s:.1f} s")
        version_id = await approved_version(http, headers, deployer.amqp_url, db, deployer.model_id)
        fleet = deployer.fleet(identities)
        started = time.monotonic()
        await fleet.start()
        result.connect_s = time.monotonic() - started
        progress(f"N={n}: every device logged in as itself in {result.connect_s:.1f} s")
        try:
            result.online_s = await all_online(db, n)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(3)
            result.idle_cpu_s = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)

            cpu_start = cpu_seconds(pid)
            created = await http.post(
                "/v1/rollouts",
                json={
                    "version_id": version_id,
                    "selector": {"fleet": "bench"},
                    "waves": list(WAVES),
                    "soak_s": SOAK_S,
                    "abort": {"failure_percent": 0, "min_devices": 1, "wave_timeout_s": 600},
                },
                headers=headers,
            )
            if created.status_code != 201:
                raise SystemExit(f"create_rollout answered {created.status_code}: {created.text}")
            rollout = created.json()
            rollout_id = uuid.UUID(rollout["id"])
            result.waves = [WaveRow(i, devices=w["size"]) for i, w in enumerate(rollout["waves"])]
            progress(f"N={n}: rollout of waves {[w.devices for w in result.waves]} started")
            marks = [cpu_start]
            wave = 0
            while True:  # the CPU at each wave's end, read as soon as the database shows it
                row = await db.fetchrow(
                    "SELECT state, current_wave FROM deployer.rollouts WHERE id = $1", rollout_id
                )
                assert row is not None
                # Small fleets merge waves (1 % and 10 % of 4 devices are one device each).
                passed = len(result.waves) if row["state"] == "completed" else row["current_wave"]
                while wave < passed:
                    marks.append(cpu_seconds(pid))
                    result.waves[wave].peak_rss_mib = peak_rss_mib(pid)
                    wave += 1
                    progress(f"N={n}: wave {wave} passed")
                if row["state"] == "completed":
                    break
                if row["state"] not in ("running",):
                    raise SystemExit(f"the rollout ended {row['state']}")
                await asyncio.sleep(0.1)
            result.total_cpu_s = marks[-1] - cpu_start
            for index, wave_row in enumerate(result.waves):
                wave_row.cpu_s = marks[index + 1] - marks[index]
            # Times from the rollout's own history (the deployer's clock, to the millisecond).
            events = await db.fetch(
                "SELECT kind, wave, recorded_at FROM deployer.rollout_events"
                " WHERE rollout_id = $1 ORDER BY id",
                rollout_id,
            )
            began = {e["wave"]: e["recorded_at"] for e in events if e["kind"] == "wave_started"}
            ended = {e["wave"]: e["recorded_at"] for e in events if e["kind"] == "wave_passed"}
            for wave_row in result.waves:
                span = ended[wave_row.wave] - began[wave_row.wave]
                wave_row.seconds = span.total_seconds()
            created_at = min(e["recorded_at"] for e in events)
            result.total_s = (ended[len(result.waves) - 1] - created_at).total_seconds()
            # Per wave: how its devices ended (all `healthy` unless the deployer fell behind).
            for row in await db.fetch(
                "SELECT wave, state, min(reason) AS reason, count(*) FROM deployer.rollout_devices"
                " WHERE rollout_id = $1 GROUP BY wave, state",
                rollout_id,
            ):
                result.waves[row["wave"]].states[row["state"]] = row["count"]
                if row["state"] != "healthy":
                    result.problems.append(
                        f"wave {row['wave'] + 1}: {row['count']} {row['state']} ({row['reason']})"
                    )
            result.fleet = copy.copy(fleet.stats)
            healthy = sum(w.states.get("healthy", 0) for w in result.waves)
            if result.fleet.reports < healthy * len(REPORTED_STATES):
                result.problems.append(
                    f"{result.fleet.reports} reports for {healthy} healthy devices"
                )
            if result.fleet.download_errors:
                result.problems.append(f"{result.fleet.download_errors} downloads failed")
        finally:
            await fleet.stop()
            await db.close()
    result.peak_rss_mib = peak_rss_mib(pid)
    return result


def run(n: int, *, interval_s: float, workdir: Path) -> Result:
    with (
        bench_broker(workdir / "broker") as broker,
        bench_vhost(broker) as amqp_url,
        fleet_deployer(
            "modelyard_bench_rollout",
            amqp_url=amqp_url,
            management_url=broker.management_url,
            artifacts=workdir / "artifacts",
            queue_prefix=QUEUE_PREFIX,
            interval_s=interval_s,
            rollout_interval_s=str(ROLLOUT_INTERVAL_S),
        ) as deployer,
    ):
        progress(f"deployer on port {deployer.port}, pid {deployer.pid}")
        return asyncio.run(run_rollout(n, deployer=deployer))


def print_table(result: Result, interval_s: float) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print()
    print(
        f"{len(result.waves)}-wave rollout over {result.devices} simulated devices, one deployer "
        f"replica (heartbeat every {interval_s:g} s, soak {SOAK_S:g} s, engine round every "
        f"{ROLLOUT_INTERVAL_S:g} s; machine: {os.cpu_count()} cores, load average now {load})"
    )
    print("| wave | devices | healthy | seconds | deployer CPU s | deployer peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for wave in result.waves:
        print(
            f"| {wave.wave + 1} | {wave.devices} | {wave.states.get('healthy', 0)} "
            f"| {wave.seconds:.2f} | {wave.cpu_s:.2f} | {wave.peak_rss_mib:.0f} |"
        )
    healthy = sum(w.states.get("healthy", 0) for w in result.waves)
    print(
        f"| total | {result.devices} | {healthy} | {result.total_s:.2f} "
        f"| {result.total_cpu_s:.2f} | {result.peak_rss_mib:.0f} |"
    )
    print()
    print(
        f"setup: {result.register_s:.1f} s to register (each device with its broker login; "
        f"deployer CPU {result.register_cpu_s:.1f} s), {result.connect_s:.1f} s to log every "
        f"device in as itself, {result.online_s:.1f} s until all online; idle fleet: "
        f"{100 * result.idle_cpu_s:.1f} % of one core. {result.fleet.commands} commands, "
        f"{result.fleet.reports} reports, {result.fleet.heartbeats} heartbeats."
    )
    print(
        "seconds: from the wave's start to its pass in the rollout's history (soak included; "
        "the total from the create); CPU: user + system of the deployer process, peak RSS its "
        "VmHWM, both from /proc."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=30.0,
        help="seconds between a device's heartbeats (the agent's default)",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="deployer-rollout-bench-"))
    started = time.monotonic()
    result = run(args.devices, interval_s=args.heartbeat_interval, workdir=workdir)
    print_table(result, args.heartbeat_interval)
    print(f"bench wall time {time.monotonic() - started:.0f} s", file=sys.stderr)
    if result.problems:
        print("NOT every device ran the version:", *result.problems, sep="\n  ")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
