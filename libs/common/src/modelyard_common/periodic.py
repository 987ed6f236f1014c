"""Work a service does every interval in the background (and once more when it stops).

A subclass writes `tick()` (flush what was counted, sync counters, ...); a failing tick is logged
and the next interval tries again, so what it holds waits instead of being lost. `wake()` runs the
next tick at once (a full buffer), and `stop()` runs a last one within its timeout:

    class UsageRecorder(Periodic):
        def __init__(self, ...) -> None:
            super().__init__(flush_s, name="gateway-usage-flush", log=log)

        async def tick(self) -> None:
            await self.flush()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod


class Periodic(ABC):
    """Runs `tick` every `interval_s` seconds in a background task, and once more at its stop."""

    def __init__(self, interval_s: float, *, name: str, log: logging.Logger) -> None:
        self.interval_s = interval_s
        self.name = name
        self._log = log
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def tick(self) -> None:
        """Do one interval's work; raise to have it logged and tried again next interval."""

    def wake(self) -> None:
        """Run the next tick now instead of at the end of the interval."""
        self._wake.set()

    async def run(self) -> None:
        """Tick every interval (or when woken) until stopped, then once more."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            self._wake.clear()
            if not await self._tick_logged() and not self._stopping.is_set():
                # Wait a whole interval before trying again, even when woken meanwhile.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)
        await self._tick_logged()

    async def _tick_logged(self) -> bool:
        try:
            await self.tick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.warning("%s failed; what it holds waits for the next run: %s", self.name, exc)
            return False
        return True

    def start(self) -> None:
        """Run in a background task."""
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop after a last tick, given `timeout` seconds (then `abandoned` says what is left)."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(task, timeout)
        except TimeoutError:
            self._log.error("%s: the last run did not finish in %.0fs", self.name, timeout)
        self.abandoned()

    def abandoned(self) -> None:  # noqa: B027 - a hook: most subclasses hold nothing
        """Say what a stop left undone (a subclass that holds something logs it here)."""
