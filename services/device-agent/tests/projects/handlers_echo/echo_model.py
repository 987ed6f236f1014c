"""A tiny handlers-protocol project: echoes its input and says which version answered."""

import os
import time
from typing import Any

VERSION = os.environ.get("MODEL_VERSION", "1")
# Lets a test make the project slow to start (to kill the agent while it waits for health).
time.sleep(float(os.environ.get("STARTUP_DELAY", "0")))


def predict(payload: Any) -> dict[str, Any]:
    """Return the payload back, tagged with the serving version."""
    return {"version": VERSION, "echo": payload}


def size(payload: bytes) -> dict[str, int]:
    """Return the number of bytes received (used with input_type image)."""
    return {"bytes": len(payload)}


def explode(payload: Any) -> None:
    """Always fail, to show how a handler error comes back."""
    raise ValueError("the model cannot handle " + repr(payload))


def crash(payload: Any) -> None:
    """Exit the process with status 3, as a model that dies would (Docker restarts it)."""
    os._exit(3)
