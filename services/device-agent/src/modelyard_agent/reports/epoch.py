"""The agent epoch: which life of the data dir reports come from."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path


def load_epoch(data_dir: Path) -> str:
    """Return the agent epoch of this data dir, made when the dir is new (blocking).

    `<milliseconds since 1970, 13 digits>-<random>`: the deployer compares epochs by age.
    """
    path = data_dir / "epoch"
    with contextlib.suppress(FileNotFoundError):
        epoch = path.read_text().strip()
        if epoch:
            return epoch
    epoch = f"{time.time_ns() // 1_000_000:013d}-{uuid.uuid4().hex[:12]}"
    partial = path.with_suffix(".tmp")
    partial.write_text(epoch)
    os.replace(partial, path)
    return epoch
