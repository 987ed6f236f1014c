"""Chaos scenarios: their helpers live next to them (`gateway_chaos.py`, `fake_openai.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
