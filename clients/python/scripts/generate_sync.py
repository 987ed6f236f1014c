"""Write the synchronous SDK client (modelyard_client/client.py) from the asyncio one (aio.py).

    python clients/python/scripts/generate_sync.py           # rewrite client.py
    python clients/python/scripts/generate_sync.py --check   # exit 1 when client.py is stale

`unasync` drops `async`/`await` and renames tokens (the table below); the module docstring is
replaced by the sync client's own, under a header saying where the file comes from. What the two
clients do differently besides awaiting (waiting, blocking work) lives in `_io_async` and its
twin `_io_sync`, which the renaming swaps.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
from pathlib import Path

import unasync  # type: ignore[import-untyped]

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "modelyard_client"
SOURCE = PACKAGE / "aio.py"
TARGET = PACKAGE / "client.py"
HEADER = (
    "# Generated from aio.py by clients/python/scripts/generate_sync.py (unasync); do not edit.\n"
    "# Change aio.py, then run: python clients/python/scripts/generate_sync.py\n"
    "# An async generator cannot `yield from`, so neither can its generated twin:\n"
    "# ruff: noqa: UP028\n"
)
DOCSTRING = '"""The synchronous client: `Modelyard(...).send(operations.get_model(id))`."""\n'
# Beyond unasync's own table (`__aenter__`, `AsyncIterator`, ...): the names of this package and
# of httpx whose sync twin is not the async name with `async`/`a` dropped by unasync itself.
REPLACEMENTS = {
    "AsyncModelyard": "Modelyard",
    "AsyncClient": "Client",
    "AsyncBaseTransport": "BaseTransport",
    "aclose": "close",
    "aread": "read",
    "aiter_lines": "iter_lines",
    "aiter_bytes": "iter_bytes",
    "_io_async": "_io_sync",
}


def generate(source: str) -> str:
    """Return the text of client.py for the text of aio.py."""
    with tempfile.TemporaryDirectory() as scratch:
        async_file = Path(scratch) / "_async" / "aio.py"
        async_file.parent.mkdir()
        async_file.write_text(source, encoding="utf-8")
        rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)
        unasync.unasync_files([str(async_file)], rules=[rule])
        synced = (Path(scratch) / "_sync" / "aio.py").read_text(encoding="utf-8")
    docstring = ast.parse(synced).body[0]
    assert isinstance(docstring, ast.Expr), "aio.py starts with its docstring"
    body = synced.splitlines(keepends=True)[docstring.end_lineno or 0 :]
    return HEADER + DOCSTRING + "".join(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether client.py is stale")
    args = parser.parse_args(argv)
    fresh = generate(SOURCE.read_text(encoding="utf-8"))
    if args.check:
        if TARGET.read_text(encoding="utf-8") != fresh:
            print(f"{TARGET} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
