"""What the chaos scenarios share: processes they start, kill -9 and stop, and their tables."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from modelyard_testkit.servers import port_open


def wait_port(port: int, within: float, what: str) -> None:
    """Wait until something listens on a loopback port."""
    deadline = time.monotonic() + within
    while not port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port} within {within}s")
        time.sleep(0.05)


class Proc:
    """A process a scenario starts, kills with SIGKILL or stops with SIGTERM, and starts again."""

    def __init__(self, env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        out: Any = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                self.argv(),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        self._end(signal.SIGTERM)

    def _end(self, sig: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    """Print rows as a Markdown table."""
    if not rows:
        return
    heads = list(rows[0])
    print(f"\n{title}\n")
    print("| " + " | ".join(heads) + " |")
    print("|" + "|".join("---" for _ in heads) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in heads) + " |")
    print(flush=True)
