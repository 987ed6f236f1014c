"""`serve --workers N`: N worker processes, each listening on its own SO_REUSEPORT socket.

With one listening socket shared by every worker, whichever worker wakes first accepts, and a
keep-alive client's connections can all land on one worker while the others idle (measured:
two workers gave 1.05-1.5x one, once all 32 connections sat on one). With a socket per worker
bound with SO_REUSEPORT, the kernel hashes each new connection to one of them: the load
spreads evenly, and a worker that dies takes only its own connections with it.

The supervisor starts the workers (spawned, so none inherits another's event loop or
connections), starts a new one in place of a worker that exits while the service runs (waiting
a little longer each time one dies young, so a crash loop does not spin), and on SIGTERM or
SIGINT asks every worker to stop (uvicorn's graceful shutdown) and waits for them.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger("modelyard.serve")

STOP_TIMEOUT_S = 30.0
YOUNG_S = 10.0  # a worker dying sooner than this after its start waits longer to be replaced
MAX_BACKOFF_S = 30.0


def reuseport_socket(host: str, port: int) -> socket.socket:
    """Return a socket bound to host:port with SO_REUSEPORT (one per worker)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def run_worker(app_path: str, host: str, port: int, options: dict[str, Any]) -> None:
    """One worker: its own socket on the shared address, one uvicorn server."""
    import uvicorn

    sock = reuseport_socket(host, port)
    server = uvicorn.Server(uvicorn.Config(app_path, **options))
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(1)


class Supervisor:
    """Keeps `count` workers serving `app_path` on host:port until told to stop."""

    def __init__(
        self,
        prog: str,
        app_path: str,
        *,
        host: str,
        port: int,
        count: int,
        options: dict[str, Any],
    ) -> None:
        self.prog = prog
        self.args = (app_path, host, port, options)
        self.count = count
        self.workers: list[tuple[BaseProcess, float]] = []
        self.stopping = False
        self.backoff_s = 0.5
        self._context = multiprocessing.get_context("spawn")

    def _start(self, index: int) -> tuple[BaseProcess, float]:
        process = self._context.Process(
            target=run_worker, args=self.args, name=f"{self.prog}-worker-{index}"
        )
        process.start()
        return process, time.monotonic()

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT; then stop every worker and return."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        _, host, port, _ = self.args
        log.info("%s listening on %s:%d with %d workers", self.prog, host, port, self.count)
        self.workers = [self._start(i) for i in range(self.count)]
        while not self.stopping:
            time.sleep(0.2)
            for index, (process, started) in enumerate(self.workers):
                if process.is_alive() or self.stopping:
                    continue
                lived = time.monotonic() - started
                log.error(
                    "%s worker %d (pid %s) exited with %s after %.1fs; starting another",
                    self.prog,
                    index,
                    process.pid,
                    process.exitcode,
                    lived,
                )
                if lived < YOUNG_S:
                    time.sleep(self.backoff_s)
                    self.backoff_s = min(self.backoff_s * 2, MAX_BACKOFF_S)
                else:
                    self.backoff_s = 0.5
                self.workers[index] = self._start(index)
        self._shutdown()

    def _shutdown(self) -> None:
        for process, _ in self.workers:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()  # SIGTERM: uvicorn finishes what it serves
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process, _ in self.workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
