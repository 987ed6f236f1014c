"""What `AsyncModelyard` does besides awaiting HTTP: waiting, and work that would block the loop.

`_io_sync` holds the same names for `Modelyard` (client.py is generated from aio.py, with this
module's name swapped for that one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


async def pause(seconds: float) -> None:
    """Wait `seconds` without holding up the event loop."""
    await asyncio.sleep(seconds)


async def run_blocking(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Return `function(*args, **kwargs)`, run in a worker thread (off the event loop)."""
    return await asyncio.to_thread(function, *args, **kwargs)
