"""What `Modelyard` does besides HTTP: waiting, and work that blocks (here: right away).

The synchronous twins of `_io_async`, name for name (client.py is generated from aio.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def pause(seconds: float) -> None:
    """Wait `seconds`."""
    time.sleep(seconds)


def run_blocking(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Return `function(*args, **kwargs)`, run in this thread."""
    return function(*args, **kwargs)
