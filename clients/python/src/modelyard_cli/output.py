"""Printing answers: a table for people, JSON or YAML for scripts, ids only with -q."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

Column = tuple[str, str | Callable[[dict[str, Any]], Any]]


class Format(enum.StrEnum):
    """The --output choices."""

    table = "table"
    json = "json"
    yaml = "yaml"


def ago(value: Any) -> str:
    """Return an RFC 3339 time as a short age ('12s ago'), or '-'."""
    if not value:
        return "-"
    try:
        then = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    seconds = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def cell(item: dict[str, Any], getter: str | Callable[[dict[str, Any]], Any]) -> str:
    """Return one table cell."""
    value = getter(item) if callable(getter) else item.get(getter)
    if value is None or value == "":
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def emit(
    data: Any,
    *,
    output: Format,
    quiet: bool = False,
    columns: Sequence[Column] = (),
    id_field: str = "id",
) -> None:
    """Print `data` (a list of items or one item) in the asked format."""
    items: list[Any] = data if isinstance(data, list) else [data]
    if quiet:
        for item in items:
            print(item.get(id_field, "") if isinstance(item, dict) else item)
        return
    if output is Format.json:
        print(json.dumps(data, indent=2, sort_keys=False, default=str))
        return
    if output is Format.yaml:
        import yaml

        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=not sys.stdout.isatty())
    if isinstance(data, list):
        table = Table(box=None, header_style="bold", pad_edge=False)
        for header, _ in columns:
            table.add_column(header, overflow="fold")
        for item in items:
            table.add_row(*(cell(item, getter) for _, getter in columns))
        console.print(table)
        if not items:
            print("(none)", file=sys.stderr)
        return
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in data.items() if isinstance(data, dict) else []:
        if isinstance(value, dict | list) and value and not all(isinstance(v, str) for v in value):
            text = json.dumps(value, default=str)
        else:
            text = cell({key: value}, key)
        table.add_row(key, text)
    console.print(table)


def lines(rows: Iterable[str]) -> None:
    """Print plain lines (logs, streams)."""
    for row in rows:
        print(row, flush=True)
