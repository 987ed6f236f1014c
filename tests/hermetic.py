"""Hermetic tests (issue 20): nothing a test or fixture starts outlives it.

A pytest plugin, loaded by the root conftest (`pytest_plugins`). It takes an inventory of what
this test run holds and checks it at every scope boundary, once that scope's fixtures are torn
down:

- asyncio tasks that are not done, on any loop of this process that is not closed (the session
  loop and the loops that test servers run in threads);
- processes started by the run (descendants of the pytest process), alive;
- Docker containers and networks a test made (labelled by the device agent with
  `io.modelyard.managed`, or a compose project of this checkout) that are ours: a container
  mounting something under this run's pytest base directory, or a compose project of this
  working directory;
- PostgreSQL connections of this run: to a database the run created with
  `modelyard_testkit.testing.recreate_database`, or from a TCP port of the pytest process or one
  of its descendants (other runs on the machine, with their own MODELYARD_TEST_DB_SUFFIX, are
  not counted).

At the end of a module: processes and containers (tasks and pooled connections of package
fixtures come and go while those live). At the end of a directory whose conftest holds fixtures
(collected as a package, so its `scope="package"` fixtures end with it) and at the end of the
session: everything. What a longer-lived fixture started while it was being set up belongs to
it, not to the module or directory that happened to run first.

A leak fails the teardown of the scope's last test (module, directory) or the session, naming
each leftover. The run's peak PostgreSQL connection count (sampled every 0.5 s) is printed in
the terminal summary.

Disable with `-p no:hermetic` (e.g. when debugging one test interactively).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

# Tasks that may stay pending when everything else is torn down (name or coroutine qualname):
# none today. A line here says whose task it is and why it cannot end earlier.
KNOWN_TASKS: dict[str, str] = {}
# Processes that tests may start and that outlive the run on purpose: the machine's servers
# (the scripts that start Docker or the broker for a test run leave them running).
KNOWN_PROCESSES = frozenset(
    {
        "dockerd",
        "containerd",
        "containerd-shim",
        "containerd-shim-runc-v2",
        "docker-proxy",
        "beam.smp",
        "epmd",
        "erl_child_setup",
        "inet_gethost",
        "postgres",
    }
)
MANAGED_LABEL = "io.modelyard.managed"
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_WORKDIR = "com.docker.compose.project.working_dir"
SETTLE_S = 5.0  # what a teardown may still be finishing (a backend exiting, a process reaped)
SAMPLE_EVERY_S = 0.5

REPO = Path(__file__).resolve().parent.parent


# --- inventory ------------------------------------------------------------------------------


def _all_tasks() -> list[asyncio.Task[Any]]:
    registry: Iterable[asyncio.Task[Any]] = getattr(asyncio.tasks, "_all_tasks", ())
    for _ in range(10):  # another thread may add a task while we copy the weak set
        with contextlib.suppress(RuntimeError):
            return list(registry)
    return []


def _describe_task(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    qualname = getattr(coro, "__qualname__", None) or type(coro).__name__
    thread = getattr(task.get_loop(), "_thread_id", None)
    where = ""
    if thread is not None and thread != threading.main_thread().ident:
        names = {t.ident: t.name for t in threading.enumerate()}
        where = f" (loop in thread {names.get(thread, thread)})"
    return f"task {task.get_name()!r} running {qualname}{where}"


def live_tasks(
    ignore_loop: asyncio.AbstractEventLoop | None = None,
) -> dict[asyncio.Task[Any], str]:
    """Return the pending tasks of every open loop in this process (with a description)."""
    found: dict[asyncio.Task[Any], str] = {}
    for task in _all_tasks():
        loop = task.get_loop()
        if task.done() or loop.is_closed() or loop is ignore_loop:
            continue
        description = _describe_task(task)
        if any(known in description for known in KNOWN_TASKS):
            continue
        found[task] = description
    return found


def live_processes() -> dict[tuple[int, float], str]:
    """Return the living descendants of this process: (pid, start time) -> command line."""
    found: dict[tuple[int, float], str] = {}
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return found
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE or child.name() in KNOWN_PROCESSES:
                continue
            command = " ".join(child.cmdline())[:160] or child.name()
            found[(child.pid, child.create_time())] = f"process {child.pid}: {command}"
        except psutil.Error:
            continue
    return found


class DockerView:
    """Containers and networks of this run (lazily connected; absent Docker: nothing)."""

    def __init__(self, basetemp: Path) -> None:
        self.basetemp = str(basetemp)
        self._client: Any = None
        self._probed_at = -1e9

    def _docker(self) -> Any:
        # Without an engine there is nothing to check; a test may start one (ensure-docker.sh),
        # so look again now and then.
        if self._client is None and time.monotonic() - self._probed_at > 30:
            self._probed_at = time.monotonic()
            try:
                import docker

                client = docker.from_env(timeout=10)
                client.ping()
                self._client = client
            except Exception:
                pass
        return self._client

    def _ours(self, container: Any) -> bool:
        labels = container.labels or {}
        if labels.get(COMPOSE_WORKDIR, "").startswith(str(REPO)):
            return True
        mounts = container.attrs.get("Mounts") or []
        return any(str(m.get("Source", "")).startswith(self.basetemp) for m in mounts)

    def containers(self) -> dict[str, str]:
        client = self._docker()
        if client is None:
            return {}
        found: dict[str, str] = {}
        try:
            candidates = client.containers.list(
                all=True, ignore_removed=True, filters={"label": MANAGED_LABEL}
            ) + client.containers.list(
                all=True, ignore_removed=True, filters={"label": COMPOSE_WORKDIR}
            )
        except Exception:
            return found
        for container in candidates:
            with contextlib.suppress(Exception):
                if self._ours(container):
                    found[container.id] = f"container {container.name} ({container.short_id})"
        return found

    def networks(self, projects: set[str]) -> dict[str, str]:
        client = self._docker()
        if client is None or not projects:
            return {}
        found: dict[str, str] = {}
        with contextlib.suppress(Exception):
            for network in client.networks.list(filters={"label": COMPOSE_PROJECT}):
                if (network.attrs.get("Labels") or {}).get(COMPOSE_PROJECT) in projects:
                    found[network.id] = f"network {network.name}"
        return found

    def compose_projects(self) -> set[str]:
        client = self._docker()
        if client is None:
            return set()
        with contextlib.suppress(Exception):
            return {
                c.labels.get(COMPOSE_PROJECT, "")
                for c in client.containers.list(
                    all=True, ignore_removed=True, filters={"label": COMPOSE_WORKDIR}
                )
                if c.labels.get(COMPOSE_WORKDIR, "").startswith(str(REPO))
            }
        return set()


PG_QUERY = """
SELECT pid, coalesce(datname, ''), coalesce(application_name, ''), client_port,
       coalesce(state, ''), left(coalesce(query, ''), 60)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


class PostgresView:
    """This run's connections, read from pg_stat_activity over a connection of its own."""

    def __init__(self) -> None:
        from modelyard_testkit.testing import TEST_ADMIN_DB_URL

        self.admin_url = TEST_ADMIN_DB_URL
        self._loop = self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="hermetic-postgres", daemon=True
        )
        self._thread.start()
        self._conn: Any = None
        self._lock = threading.Lock()
        self.unavailable: str | None = None
        self.peak_run = 0
        self.peak_server = 0
        self.samples = 0
        self.sample_errors = 0
        self.last_error = ""
        self.connected_once = False

    def _created(self) -> set[str]:
        from modelyard_testkit import testing

        return set(getattr(testing, "CREATED_DATABASES", ()))

    def _our_ports(self) -> set[int]:
        """Return the local ports of this process tree's connections to the server."""
        me = psutil.Process()
        processes = [me]
        with contextlib.suppress(psutil.Error):
            processes += me.children(recursive=True)
        ports: set[int] = set()
        for process in processes:
            with contextlib.suppress(psutil.Error, OSError):
                for conn in process.net_connections(kind="tcp"):
                    if conn.raddr and conn.raddr.port == self._server_port:
                        ports.add(conn.laddr.port)
        return ports

    @property
    def _server_port(self) -> int:
        from urllib.parse import urlsplit

        return urlsplit(self.admin_url.replace("+asyncpg", "")).port or 5432

    def _rows(self) -> list[tuple[Any, ...]]:
        async def query() -> list[tuple[Any, ...]]:
            import asyncpg

            from modelyard_common.outbox import asyncpg_dsn

            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(
                    asyncpg_dsn(self.admin_url),
                    timeout=10,
                    server_settings={"application_name": "modelyard-hermetic"},
                )
            return [tuple(r) for r in await self._conn.fetch(PG_QUERY, timeout=10)]

        with self._lock:
            if self.unavailable is not None:
                return []
            try:
                rows = asyncio.run_coroutine_threadsafe(query(), self._loop).result(30)
            except Exception as exc:
                self._conn = None  # a new connection next time
                if not self.connected_once:  # no PostgreSQL here: nothing of ours to count
                    self.unavailable = f"{type(exc).__name__}: {exc}"
                    return []
                raise
            self.connected_once = True
            return rows

    def connections(self) -> dict[int, str]:
        """Return this run's connections: backend pid -> description."""
        try:
            rows = self._rows()
        except Exception as exc:  # the check cannot pass without looking
            return {-1: f"PostgreSQL connections not readable: {type(exc).__name__}: {exc}"}
        created = self._created()
        ports = self._our_ports()
        found: dict[int, str] = {}
        for pid, datname, app, port, state, query in rows:
            if datname in created or (port is not None and port in ports):
                found[pid] = (
                    f"PostgreSQL connection {pid} to {datname or '?'}"
                    f"{f' ({app})' if app else ''}, {state}: {query!r}"
                )
        return found

    def sample(self) -> None:
        try:
            rows = self._rows()
        except Exception as exc:
            self.sample_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        if self.unavailable:
            return
        created = self._created()
        ports = self._our_ports()
        run = sum(
            1
            for _pid, datname, _app, port, _s, _q in rows
            if datname in created or (port is not None and port in ports)
        )
        self.samples += 1
        self.peak_run = max(self.peak_run, run)
        self.peak_server = max(self.peak_server, len(rows) + 1)  # + the sampler's own

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    close = self._conn.close(timeout=5)
                    asyncio.run_coroutine_threadsafe(close, self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


@dataclass
class Snapshot:
    """What was alive at one moment (tasks held weakly: a snapshot keeps nothing alive)."""

    tasks: weakref.WeakSet[asyncio.Task[Any]] = field(default_factory=weakref.WeakSet)
    processes: set[tuple[int, float]] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    connections: set[int] = field(default_factory=set)

    def absorb(self, other: Snapshot) -> None:
        for task in other.tasks:
            self.tasks.add(task)
        self.processes |= other.processes
        self.containers |= other.containers
        self.networks |= other.networks
        self.connections |= other.connections


KINDS_ALL = ("tasks", "processes", "containers", "networks", "connections")
KINDS_MODULE = ("processes", "containers", "networks")


class Hermetic:
    """The plugin's state for one pytest run."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        basetemp = Path(config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
        self.docker = DockerView(basetemp)
        self.postgres = PostgresView()
        self.session_start = Snapshot()
        self.module_start: Snapshot | None = None
        self.package_start: dict[str, Snapshot] = {}
        # What longer-lived fixtures started during their setup, per scope they outlive.
        self.outer_in_module = Snapshot()
        self.outer_in_package: dict[str, Snapshot] = {}
        self.reports: list[str] = []
        self.session_leaks: list[str] = []
        self.checks = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    # -- inventory -----------------------------------------------------------------------

    def _current(self, kinds: Iterable[str]) -> dict[str, dict[Any, str]]:
        current: dict[str, dict[Any, str]] = {}
        kinds = tuple(kinds)
        if "tasks" in kinds:
            current["tasks"] = live_tasks(ignore_loop=self.postgres.loop)
        if "processes" in kinds:
            current["processes"] = live_processes()
        if "containers" in kinds or "networks" in kinds:
            current["containers"] = self.docker.containers()
            current["networks"] = self.docker.networks(self.docker.compose_projects())
        if "connections" in kinds:
            current["connections"] = self.postgres.connections()
        return current

    def snapshot(self, kinds: Iterable[str] = KINDS_ALL) -> Snapshot:
        current = self._current(kinds)
        snap = Snapshot()
        for task in current.get("tasks", {}):
            snap.tasks.add(task)
        snap.processes = set(current.get("processes", {}))
        snap.containers = set(current.get("containers", {}))
        snap.networks = set(current.get("networks", {}))
        snap.connections = set(current.get("connections", {}))
        return snap

    def leaks(
        self, allowed: Snapshot, kinds: Iterable[str], settle_s: float = SETTLE_S
    ) -> list[str]:
        """Return what is alive now and not in `allowed`, after letting teardowns settle."""
        kinds = tuple(kinds)
        deadline = time.monotonic() + settle_s
        while True:
            self.checks += 1
            current = self._current(kinds)
            found: list[str] = []
            for task, text in current.get("tasks", {}).items():
                if task not in allowed.tasks:
                    found.append(text)
            for kind, allowed_keys in (
                ("processes", allowed.processes),
                ("containers", allowed.containers),
                ("networks", allowed.networks),
                ("connections", allowed.connections),
            ):
                if kind in kinds:
                    found += [
                        text
                        for key, text in current.get(kind, {}).items()
                        if key not in allowed_keys
                    ]
            if not found or time.monotonic() > deadline:
                return sorted(found)
            time.sleep(0.25)

    # -- the sampler ---------------------------------------------------------------------

    def start_sampler(self) -> None:
        def run() -> None:
            while not self._stop.wait(SAMPLE_EVERY_S):
                self.postgres.sample()

        self.postgres.sample()
        self._sampler = threading.Thread(target=run, name="hermetic-pg-sampler", daemon=True)
        self._sampler.start()

    def stop_sampler(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(10)
        self.postgres.sample()


_KEY = pytest.StashKey[Hermetic]()


def _state(config: pytest.Config) -> Hermetic | None:
    return config.stash.get(_KEY, None)


def _module_of(item: pytest.Item | None) -> pytest.Module | None:
    return item.getparent(pytest.Module) if item is not None else None


def _packages(item: pytest.Item | None) -> list[str]:
    """Return the node ids of the packages `item` lies in, outermost first."""
    if item is None:
        return []
    return [p.nodeid for p in reversed(list(item.iter_parents())) if isinstance(p, pytest.Package)]


# --- directories with fixtures are packages: `scope="package"` ends with the directory ------


class FixtureDirectory(pytest.Package):
    """A test directory without `__init__.py` whose conftest defines fixtures.

    pytest collects such a directory as a plain `Dir`, and `scope="package"` fixtures of its
    conftest then live until the end of the session. As a package, they end with the directory.
    """

    def setup(self) -> None:  # no __init__.py to import for setup_module/teardown_module
        pass


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if (path / "__init__.py").exists() or not (path / "conftest.py").exists():
        return None
    if path == parent.config.rootpath:
        return None
    return FixtureDirectory.from_parent(parent, path=path)


# --- hooks ------------------------------------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # pragma: no cover - no xdist here
        return
    if config.option.collectonly:
        return
    config.stash[_KEY] = Hermetic(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is None:
        return
    state.session_start = state.snapshot()
    state.start_sampler()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: Any
) -> Generator[None, Any, Any]:
    state = _state(request.config)
    if state is None or fixturedef.scope not in ("package", "session"):
        return (yield)
    kinds = KINDS_ALL
    before = state.snapshot(kinds)
    try:
        return (yield)
    finally:
        after = state.snapshot(kinds)
        created = Snapshot(
            processes=after.processes - before.processes,
            containers=after.containers - before.containers,
            networks=after.networks - before.networks,
            connections=after.connections - before.connections,
        )
        for task in after.tasks:
            if task not in before.tasks:
                created.tasks.add(task)
        state.outer_in_module.absorb(created)
        # A fixture belongs to the directory of the conftest that defines it, whatever its
        # scope says: only the directories it was not defined in may see it outlive them.
        baseid = fixturedef.baseid
        item = getattr(request, "_pyfuncitem", None)
        for nodeid in _packages(item):
            if not (baseid == nodeid or baseid.startswith(nodeid + "/")):
                state.outer_in_package.setdefault(nodeid, Snapshot()).absorb(created)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    state = _state(item.config)
    if state is not None:
        if state.module_start is None:
            state.module_start = state.snapshot(KINDS_MODULE)
            state.outer_in_module = Snapshot()
        for nodeid in _packages(item):
            if nodeid not in state.package_start:
                state.package_start[nodeid] = state.snapshot()
                state.outer_in_package[nodeid] = Snapshot()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, Any, Any]:
    try:
        return (yield)
    finally:
        _check_ended_scopes(item, nextitem)


def _check_ended_scopes(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the teardown of `item`: check the module and directories that just ended."""
    state = _state(item.config)
    if state is None or nextitem is None:  # the session's end is checked in sessionfinish
        return
    problems: list[str] = []
    module = _module_of(item)
    if module is not _module_of(nextitem):
        allowed = state.module_start or Snapshot()
        allowed.absorb(state.outer_in_module)
        state.module_start = None
        leaks = state.leaks(allowed, KINDS_MODULE)
        if leaks:
            problems.append(f"module {module.nodeid if module else item.nodeid} left behind:")
            problems += [f"  {leak}" for leak in leaks]
    ended = [p for p in _packages(item) if p not in _packages(nextitem)]
    for nodeid in reversed(ended):
        allowed = state.package_start.pop(nodeid, Snapshot())
        allowed.absorb(state.outer_in_package.pop(nodeid, Snapshot()))
        leaks = state.leaks(allowed, KINDS_ALL)
        if leaks:
            problems.append(f"directory {nodeid} left behind (its fixtures have ended):")
            problems += [f"  {leak}" for leak in leaks]
    if problems:
        state.reports += problems
        raise AssertionError("hermetic check failed:\n" + "\n".join(problems))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is None:
        return
    # Everything is torn down by now (the runner's own sessionfinish ends the last scopes).
    state.session_leaks = state.leaks(state.session_start, KINDS_ALL)
    state.stop_sampler()
    state.postgres.close()
    if state.session_leaks and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    state = _state(terminalreporter.config)
    if state is None:
        return
    write: Callable[[str], None] = terminalreporter.write_line
    terminalreporter.section("hermetic check")
    if state.session_leaks:
        write(f"FAILED: {len(state.session_leaks)} thing(s) outlived the session:")
        for leak in state.session_leaks[:50]:
            write(f"  {leak}")
    else:
        write("nothing outlived the session (tasks, processes, containers, connections)")
    if state.reports:
        write(f"{sum(1 for r in state.reports if not r.startswith('  '))} scope(s) left things:")
        for line in state.reports[:50]:
            write(f"  {line}")
    pg = state.postgres
    if pg.unavailable and not pg.samples:
        write(f"peak PostgreSQL connections: not measured ({pg.unavailable})")
    else:
        write(
            f"peak PostgreSQL connections: {pg.peak_run} "
            f"(this run; {pg.peak_server} on the server, all clients; {pg.samples} samples)"
        )
        if pg.sample_errors:
            write(f"  {pg.sample_errors} sample(s) failed, the last: {pg.last_error}")
