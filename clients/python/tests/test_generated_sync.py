"""The synchronous client is generated from the asyncio one: the committed client.py is what
clients/python/scripts/generate_sync.py writes from aio.py now (edit aio.py, then run it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
CLIENT = Path(__file__).resolve().parent.parent / "src" / "modelyard_client" / "client.py"


def test_client_py_is_generated_from_aio_py() -> None:
    check = subprocess.run(
        [sys.executable, str(SCRIPTS / "generate_sync.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert CLIENT.read_text(encoding="utf-8").startswith("# Generated from aio.py by ")
