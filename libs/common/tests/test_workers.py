"""`serve --workers N`: a socket per worker (SO_REUSEPORT), replaced when one dies, all stopped."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard_testkit.servers import free_port

APP = """
import os

def make():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
    return app
"""


def answering_pid(port: int) -> int:
    """Open a new connection, ask once, return the pid of the worker that answered."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        return int(conn.getresponse().read())
    finally:
        conn.close()


def wait_answering(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answering_pid(port)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    (tmp_path / "pidapp.py").write_text(textwrap.dedent(APP))
    port = free_port()
    code = (
        "from modelyard_common.cli import serve_app; "
        f"serve_app('pidtest', 'pidapp:make', host='127.0.0.1', port={port}, workers=2, "
        "proxy_headers=False)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        wait_answering(port)
        deadline = time.monotonic() + 30  # both workers listening (spawned: each takes a while)
        while len({answering_pid(port) for _ in range(16)}) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_connections_spread_over_every_worker(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    _, port = served
    pids = Counter(answering_pid(port) for _ in range(64))
    assert len(pids) == 2
    # The kernel hashes each connection to a worker's socket: about half each (binomial; fewer
    # than 12 of 64 on one side has a chance below one in a million).
    assert min(pids.values()) >= 12


def test_a_killed_worker_is_replaced_and_a_stop_stops_them_all(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = served
    first = {answering_pid(port) for _ in range(32)}
    assert len(first) == 2
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    seen: set[int] = set()
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):  # one queued on the killed worker's socket is reset
            seen.add(answering_pid(port))
        if len(seen - first) >= 1 and victim not in seen:
            break
        time.sleep(0.1)
    replacement = seen - first
    assert len(replacement) == 1, f"no replacement for worker {victim}: saw {seen}"
    workers = (first - {victim}) | replacement
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(40) == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
