"""Private PostgreSQL and RabbitMQ servers for tests that restart or kill them.

Each server lives in its own temporary directory on free loopback ports and is stopped by the
test that started it; the machine's shared servers are never touched. Restarts keep the data
directory, so durable queues and committed rows survive as they would in production.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

RABBITMQ_SERVER = os.environ.get("MODELYARD_TEST_RABBITMQ_SERVER", "")
POSTGRES_BIN = os.environ.get("MODELYARD_TEST_POSTGRES_BIN", "")


# Ports handed out below the kernel's ephemeral range (32768-60999 by default): a port the
# kernel picked for `bind(0)` can be taken again by any outgoing connection before the server
# the test starts binds it ("address already in use", seen with six agents starting at once).
_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """Return a loopback port nothing listens on right now, never the same twice per process."""
    for _ in range(len(_PORTS)):
        port = random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port left in 20000-31999")


def port_open(port: int) -> bool:
    """Return whether something accepts TCP connections on a loopback port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(url: str, process: subprocess.Popen[bytes], within: float = 60.0) -> None:
    """Wait until `url` (a service's /readyz) answers 200; exit if `process` ends first."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the service exited ({process.returncode})")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready within {within:.0f}s")


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout}s")
        time.sleep(0.1)


def stop_group(
    process: subprocess.Popen[bytes], sig: signal.Signals, *, port: int, timeout: float = 30.0
) -> None:
    """Signal a server's process group, wait for it (SIGKILL past `timeout`) and its port."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    # Children (beam's erl_child_setup, postgres backends) may outlive the leader: end them too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    _wait(lambda: not port_open(port), 10, f"port {port} still open")


def _rabbitmq_server() -> str:
    for candidate in (RABBITMQ_SERVER, "/usr/lib/rabbitmq/bin/rabbitmq-server"):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise RuntimeError("rabbitmq-server is not installed")
    return found


def _postgres_bin() -> Path:
    if POSTGRES_BIN:
        return Path(POSTGRES_BIN)
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(os.path.realpath(initdb)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not versions:
        raise RuntimeError("PostgreSQL server binaries (initdb) are not installed")
    return versions[-1]


class _PrivateServer:
    """A server in its own temporary directory that a test starts, restarts and closes."""

    dir: Path

    def start(self, timeout: float = 60.0) -> _PrivateServer:
        raise NotImplementedError

    def stop(self, *, kill: bool = False, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def restart(self, *, kill: bool = False) -> None:
        """Stop (or kill) the server and start it again on the same ports and data."""
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRabbit(_PrivateServer):
    """A RabbitMQ node of its own (AMQP and distribution ports, mnesia and logs in a temp dir)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="modelyard-rabbit-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"modelyard-test-{uuid.uuid4().hex[:8]}@localhost"
        self.process: subprocess.Popen[bytes] | None = None
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )

    @property
    def url(self) -> str:
        """Return the AMQP URL of the default vhost."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        d = self.dir
        return {
            **os.environ,
            "HOME": str(d),  # the Erlang cookie goes here
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_LOGS": str(d / "log" / "rabbit.log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
        }

    def start(self, timeout: float = 60.0) -> PrivateRabbit:
        """Start the node and return once it accepts AMQP connections."""
        log = (self.dir / "server.out").open("ab")
        self.process = subprocess.Popen(
            [_rabbitmq_server()],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait(self._ready, timeout, f"RabbitMQ {self.node} did not start")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"RabbitMQ exited: see {self.dir / 'server.out'}")
        return port_open(self.port)

    def stop(self, *, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop the node (SIGKILL with `kill`) and wait until its port is closed."""
        process, self.process = self.process, None
        if process is not None:
            sig = signal.SIGKILL if kill else signal.SIGTERM
            stop_group(process, sig, port=self.port, timeout=timeout)


class PrivatePostgres(_PrivateServer):
    """A PostgreSQL cluster of its own (initdb into a temp dir, trust auth, a free port)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="modelyard-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.bin = _postgres_bin()
        self.process: subprocess.Popen[bytes] | None = None
        self._user: str | None = None
        if os.geteuid() == 0:  # postgres refuses to run as root
            self._user = "postgres"
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"])

    @property
    def admin_url(self) -> str:
        """Return the SQLAlchemy URL of the `postgres` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _argv(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self._user, "--", *argv] if self._user else argv

    def _run(self, argv: list[str]) -> None:
        subprocess.run(self._argv(argv), check=True, capture_output=True)

    def start(self, timeout: float = 30.0) -> PrivatePostgres:
        """Start the server and return once it accepts connections."""
        log = (self.dir / "server.out").open("ab")
        self.process = subprocess.Popen(
            self._argv(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.dir}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait(self._ready, timeout, "PostgreSQL did not start")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited: see {self.dir / 'server.out'}")
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            check=False,
        )
        return result.returncode == 0

    def stop(self, *, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop the server (immediate shutdown, or SIGKILL with `kill`)."""
        process, self.process = self.process, None
        if process is not None:
            # SIGQUIT is PostgreSQL's immediate shutdown: connections drop as in a crash.
            sig = signal.SIGKILL if kill else signal.SIGQUIT
            stop_group(process, sig, port=self.port, timeout=timeout)
            # A killed postmaster leaves its pid and socket lock files; the next start would
            # refuse to run beside the "other postmaster" they name.
            (self.data / "postmaster.pid").unlink(missing_ok=True)
            (self.dir / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
            (self.dir / f".s.PGSQL.{self.port}").unlink(missing_ok=True)
