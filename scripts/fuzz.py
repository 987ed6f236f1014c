"""Fuzz every service's live OpenAPI with schemathesis (`make fuzz`; CI runs it after the tests).

Starts registry, deployer, gateway and one device agent as real processes on a fresh database and
RabbitMQ vhost (real PostgreSQL, real RabbitMQ, real Docker for the agent), authenticates as an
admin (dev-mode JWT), creates a gateway API key and registers a device for the agent, then runs
`schemathesis run --checks all` against each OpenAPI document. It fails on any failure schemathesis
reports: a 5xx, a response that does not match its schema, an undocumented status code or content
type, bad input accepted, and the rest of schemathesis's checks.

Prints a table per service: operations covered, requests made, failures.

    MODELYARD_FUZZ_EXAMPLES=50 make fuzz   # more examples per operation (default 12)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_DB_SUFFIX,
    TEST_JWT_SECRET,
    bearer,
    recreate_database,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG = REPO / "scripts" / "schemathesis.toml"
EXAMPLES = int(os.environ.get("MODELYARD_FUZZ_EXAMPLES", "12"))
SEED = os.environ.get("MODELYARD_FUZZ_SEED", "20261202")
WORKSPACE = "fuzz"
HOOKS_ENV = {
    "SCHEMATHESIS_HOOKS": "fuzz_hooks",
    "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO / "scripts"), os.environ.get("PYTHONPATH")])
    ),
}


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Target:
    """One schemathesis run: a service's OpenAPI, the operations to cover and how to log in."""

    service: str
    base_url: str
    authorization: str | None
    filters: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    target: Target
    returncode: int
    operations: int
    requests: int
    failures: int
    output: str


@dataclass
class Suite:
    tmp: Path
    env: dict[str, str]
    http: httpx.AsyncClient
    processes: list[tuple[str, asyncio.subprocess.Process, Path]] = field(default_factory=list)

    async def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start a service process with its output in `<tmp>/<name>.log`."""
        log_path = self.tmp / f"{name}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env={**os.environ, **self.env, **(env or {})},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append((name, process, log_path))

    async def wait_ready(self, name: str, url: str) -> None:
        """Wait until `url` answers 200; fail early if the process died."""
        _, process, log_path = next(p for p in self.processes if p[0] == name)

        async def ready() -> bool:
            if process.returncode is not None:
                raise RuntimeError(
                    f"{name} exited:\n{log_path.read_text(errors='replace')[-4000:]}"
                )
            try:
                return (await self.http.get(url, timeout=2)).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(ready, timeout=90, interval=0.2)

    async def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL) and reap it."""
        for _, process, _ in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for _, process, _ in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


async def run_command(*argv: str, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode("utf-8", "replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}:\n{text[-4000:]}")
    return text


async def schemathesis(target: Target, report_dir: Path) -> Outcome:
    """Run schemathesis over one target and return what it found."""
    ndjson = report_dir / f"{target.service}.ndjson"
    argv = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{target.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "1",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(ndjson),
        *target.filters,
    ]
    if target.authorization:
        argv += ["--header", f"Authorization: {target.authorization}"]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "160", **HOOKS_ENV},
        cwd=report_dir,  # schemathesis keeps its cache in the working directory
    )
    raw, _ = await process.communicate()
    output = raw.decode("utf-8", "replace")
    operations, requests, failures = summarise(ndjson, output)
    return Outcome(target, process.returncode or 0, operations, requests, failures, output)


def summarise(ndjson: Path, output: str) -> tuple[int, int, int]:
    """Return (operations selected, test cases run, unique failures) of one run."""
    operations = 0
    if ndjson.exists():
        for line in ndjson.read_text().splitlines():
            loaded = json.loads(line).get("LoadingFinished")
            if loaded:
                operations = int(loaded["statistic"]["operations"]["selected"])
    cases = re.search(r"(\d+) generated", output)
    failures = re.search(r"(\d+) unique failures?", output)
    return (
        operations,
        int(cases.group(1)) if cases else 0,
        int(failures.group(1)) if failures else 0,
    )


async def main() -> int:
    name = f"modelyard_fuzz_{uuid.uuid4().hex[:8]}"
    vhost = f"{name}{TEST_DB_SUFFIX}"
    tmp = Path(tempfile.mkdtemp(prefix="modelyard-fuzz-"))
    report_dir = REPORT_DIR
    database_url = await recreate_database(TEST_ADMIN_DB_URL, name)
    # Free ports only (the agent's ingress too): two runs on one machine must not collide.
    ports = {s: free_port() for s in ("registry", "deployer", "gateway", "agent", "ingress")}
    urls = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
    env = {
        "MODELYARD_ENV": "dev",
        "MODELYARD_DATABASE_URL": database_url,
        "MODELYARD_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "MODELYARD_JWT_SECRET": TEST_JWT_SECRET,
        "MODELYARD_REGISTRY_URL": urls["registry"],
        "MODELYARD_DEPLOYER_URL": urls["deployer"],
        "MODELYARD_LOG_JSON": "false",
        "MODELYARD_LOG_LEVEL": "WARNING",
        "MODELYARD_DEPLOYER_ARTIFACT_DIR": str(tmp / "artifacts"),
    }
    admin = bearer("admin", WORKSPACE, sub="fuzzer")["Authorization"]
    outcomes: list[Outcome] = []
    async with httpx.AsyncClient(timeout=30) as http:
        suite = Suite(tmp=tmp, env=env, http=http)
        try:
            await run_command("rabbitmqctl", "-q", "add_vhost", vhost)
            await run_command(
                "rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"
            )
            await asyncio.gather(
                *(
                    run_command(str(BIN / f"modelyard-{s}"), "migrate", env=env)
                    for s in ("registry", "deployer", "gateway")
                )
            )
            for service in ("registry", "deployer", "gateway"):
                argv = [str(BIN / f"modelyard-{service}"), "serve", "--port", str(ports[service])]
                await suite.start(service, argv)
            for service in ("registry", "deployer", "gateway"):
                await suite.wait_ready(service, f"{urls[service]}/readyz")
            headers = {"Authorization": admin}
            device = (
                await http.post(
                    f"{urls['deployer']}/v1/devices",
                    json={"name": "fuzz-device", "labels": {"site": "fuzz"}},
                    headers=headers,
                )
            ).json()
            key = (
                await http.post(
                    f"{urls['gateway']}/v1/keys", json={"name": "fuzz"}, headers=headers
                )
            ).json()["key"]
            await suite.start(
                "agent",
                [str(BIN / "modelyard-agent"), "serve", "--port", str(ports["agent"])],
                {
                    "MODELYARD_AGENT_DEVICE_ID": device["id"],
                    "MODELYARD_AGENT_TOKEN": device["token"],
                    "MODELYARD_AGENT_DATA_DIR": str(tmp / "agent"),
                    "MODELYARD_AGENT_PORT": str(ports["agent"]),
                    "MODELYARD_AGENT_INGRESS_PORT": str(ports["ingress"]),
                },
            )
            await suite.wait_ready("agent", f"{urls['agent']}/readyz")
            targets = [
                Target("registry", urls["registry"], admin),
                Target("deployer", urls["deployer"], admin),
                # DELETE /v1/keys/{id} revokes: the key stays readable, marked revoked.
                Target(
                    "gateway admin",
                    urls["gateway"],
                    admin,
                    ["--exclude-tag", "openai", "--exclude-checks", "use_after_free"],
                ),
                Target(
                    "gateway openai", urls["gateway"], f"Bearer {key}", ["--include-tag", "openai"]
                ),
                Target("agent", urls["agent"], None),
            ]
            for target in targets:
                outcome = await schemathesis(target, report_dir)
                outcomes.append(outcome)
                log_path = report_dir / f"{target.service.replace(' ', '-')}.txt"
                log_path.write_text(outcome.output)
                if outcome.returncode != 0:
                    print(outcome.output[-30000:])
                    print(f"(whole schemathesis output of {target.service}: {log_path})")
        finally:
            await suite.stop()
            for service, _, log_path in suite.processes:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                if any("Traceback" in line or "ERROR" in line for line in tail):
                    print(f"--- {service} (last lines of {log_path})", *tail, sep="\n")
            with contextlib.suppress(RuntimeError):
                await run_command("rabbitmqctl", "-q", "delete_vhost", vhost)
            connection = await asyncpg.connect(asyncpg_dsn(TEST_ADMIN_DB_URL))
            try:
                await connection.execute(
                    f'DROP DATABASE IF EXISTS "{name}{TEST_DB_SUFFIX}" WITH (FORCE)'
                )
            finally:
                await connection.close()
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"schemathesis, --checks all, {EXAMPLES} examples per operation, seed {SEED}")
    print(f"{'service':<16} {'operations':>10} {'requests':>9} {'failures':>9}  result")
    for o in outcomes:
        result = "ok" if o.returncode == 0 else f"FAILED (exit {o.returncode})"
        print(
            f"{o.target.service:<16} {o.operations:>10} {o.requests:>9} {o.failures:>9}  {result}"
        )
    return 0 if outcomes and all(o.returncode == 0 for o in outcomes) else 1


REPORT_DIR = Path(os.environ.get("MODELYARD_FUZZ_REPORT_DIR", REPO / ".fuzz"))

if __name__ == "__main__":
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    sys.exit(asyncio.run(main()))
