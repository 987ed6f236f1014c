"""Write each service's OpenAPI document, as its app serves it at /openapi.json, to a folder.

    python scripts/dump-openapi.py clients/typescript/openapi

The documents come from the apps themselves (their factories, no server or database needed),
so `make clients` after any router change regenerates the typed clients from the truth.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

APPS = {
    "registry": "modelyard_registry.app:create_app",
    "deployer": "modelyard_deployer.app:create_app",
    "gateway": "modelyard_gateway.app:create_app",
}


def main() -> int:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "clients/typescript/openapi")
    target.mkdir(parents=True, exist_ok=True)
    # Factories read settings; the development defaults are enough to describe the API.
    os.environ.setdefault("MODELYARD_ENV", "dev")
    for name, path in APPS.items():
        module, factory = path.split(":")
        app = getattr(importlib.import_module(module), factory)()
        document = app.openapi()
        (target / f"{name}.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
