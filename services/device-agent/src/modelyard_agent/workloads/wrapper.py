"""The handler wrapper (`runtime/modelyard_handlers.py`), copied into the data dir at start."""

from __future__ import annotations

from pathlib import Path

WRAPPER_SOURCE = Path(__file__).parents[1] / "runtime" / "modelyard_handlers.py"


def install_wrapper(path: Path) -> None:
    """Write the wrapper to `path` unless it is there already, readable by all (blocking)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = WRAPPER_SOURCE.read_bytes()
    if not path.exists() or path.read_bytes() != wrapper:
        path.write_bytes(wrapper)
    # Mounted read-only into containers that run as an unprivileged user, whatever the umask.
    path.chmod(0o644)
