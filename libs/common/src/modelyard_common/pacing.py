"""Background work held to a share of the event loop while the service is busy serving.

A service's event consumers share the loop that answers its clients. Draining a backlog of
thousands of events at full speed takes the loop from the requests (one handler after another,
each a transaction and its follow-ups), so a busy gateway answered a tenth of what it answers
idle. A `Pacer` runs paced work one piece at a time *while `busy()` says the service serves
traffic*, and after each piece waits long enough that the work takes at most `share` of the
time; when the service is idle, the work runs at full speed and concurrency, as before:

    pacer = Pacer(share=0.05, busy=traffic.busy)
    async with pacer.turn():
        await handle(event)

The time a piece takes is measured on the loop's clock (wall time: its awaits on the database
count too), which errs on the side of the clients.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["Pacer", "Traffic"]


class Traffic:
    """When the service last answered a request; `busy()` while that is recent."""

    __slots__ = ("last", "window_s")

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self.last = -window_s

    def seen(self) -> None:
        """Note a request (one attribute store: cheap enough for every request)."""
        self.last = time.monotonic()

    def busy(self) -> bool:
        """Return whether a request came within the last `window_s` seconds."""
        return time.monotonic() - self.last < self.window_s


class Pacer:
    """Runs paced work one piece at a time, at most `share` of the time, while `busy()`."""

    def __init__(self, share: float, busy: Callable[[], bool]) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self.busy = busy
        self._lock = asyncio.Lock()
        self.paced = 0  # pieces that ran paced (for tests and metrics)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Run the body now (idle) or in its paced turn (busy), then rest its due."""
        if not self.busy():
            yield
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                yield
            finally:
                self.paced += 1
                spent = loop.time() - started
                if self.share < 1 and self.busy():
                    await asyncio.sleep(spent * (1 - self.share) / self.share)
