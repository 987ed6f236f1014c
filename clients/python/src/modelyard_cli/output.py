"""Printing answers: a table for people, JSON or YAML for scripts, ids only with -q.

Tables fit the terminal (`$COLUMNS`, else the terminal's width, else 80 columns): ids show as
short prefixes (8 characters, more when two ids in the column share them, as git does) that
never wrap, descriptive text folds first and names last. `--wide` shows full ids; JSON, YAML and
-q always carry full ids.
"""

from __future__ import annotations

import enum
import json
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from rich.table import Table

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
SHORT_ID = 8  # characters of an id shown in tables (unless two ids in a column share them)
TEXT_MIN = 6  # descriptive text folds down to this width before names start folding
NAME_MIN = 6
# Trailing blanks of a rendered line, before any closing ANSI codes.
TRAILING_BLANKS = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$")


class Column(NamedTuple):
    """One table column: its header, how a cell is read, and whether it is descriptive text
    (which folds first when the table is wider than the terminal)."""

    header: str
    value: str | Callable[[dict[str, Any]], Any]
    text: bool = False


class Format(enum.StrEnum):
    """The --output choices."""

    table = "table"
    json = "json"
    yaml = "yaml"


def ago(value: Any) -> str:
    """Return an RFC 3339 time as a short age ('12s ago'), or '-'."""
    then = _time(value)
    if not isinstance(then, datetime):
        return then
    seconds = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def when(value: Any) -> str:
    """Return an RFC 3339 time to the second, in UTC ('2026-12-06 02:20:48Z'), or '-'."""
    then = _time(value)
    if not isinstance(then, datetime):
        return then
    return then.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _time(value: Any) -> datetime | str:
    """Return an RFC 3339 time parsed; '-' when there is none, the text when it is no time."""
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)


def is_uuid(value: object) -> bool:
    """Return whether `value` is a UUID written out (an id rather than a name)."""
    return isinstance(value, str) and bool(UUID_RE.match(value))


def short_ids(ids: Iterable[str]) -> dict[str, str]:
    """Return each id's shortest prefix of at least 8 characters that no other id starts with."""
    unique = sorted({i.lower() for i in ids})
    shown: dict[str, str] = {}
    for n, full in enumerate(unique):
        shared = 0
        for other in unique[
            max(n - 1, 0) : n + 2
        ]:  # sorted: the longest shared start is a neighbour's
            if other != full:
                shared = max(shared, len(_common_start(full, other)))
        length = max(SHORT_ID, shared + 1)
        if length < len(full) and full[length - 1] == "-":
            length += 1  # a prefix ends on a digit, not on a dash
        shown[full] = full[:length]
    return shown


def _common_start(a: str, b: str) -> str:
    """Return the longest common prefix of two strings."""
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return a[:size]


def cell(item: dict[str, Any], getter: str | Callable[[dict[str, Any]], Any]) -> str | list[str]:
    """Return one table cell: text, or a list of ids (kept apart to be shortened)."""
    value = getter(item) if callable(getter) else item.get(getter)
    if value is None or value == "":
        return "-"
    if isinstance(value, list):
        if value and all(is_uuid(v) for v in value):
            return [str(v) for v in value]
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def terminal_width() -> int:
    """Return the width tables fit: $COLUMNS, else the terminal's, else 80."""
    return max(shutil.get_terminal_size((80, 24)).columns, 20)


def fit(
    natural: list[int], minimum: list[int], order: Sequence[Sequence[int]], room: int
) -> list[int]:
    """Return column widths that fit `room`: the widest column of the first group narrows first,
    one character at a time, down to its minimum; then the next group's. A table that cannot
    fit keeps its minimums (the terminal wraps it; an id is never cut)."""
    widths = list(natural)
    excess = sum(widths) - room
    for group in order:
        while excess > 0:
            narrowable = [i for i in group if widths[i] > minimum[i]]
            if not narrowable:
                break
            widest = max(narrowable, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1
    return widths


def table_lines(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    kinds: Sequence[str],
    width: int,
    show_header: bool = True,
) -> list[str]:
    """Return a table rendered for the terminal, each line at most `width` wide when it can be.

    Kinds of column: `id` never wraps; `ids` (a list of ids) wraps between ids only; `text`
    (descriptive) folds first, down to 6 characters; `name` (names, states, ages) folds last.
    """
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    count = len(headers)
    natural = [
        max([cell_len(headers[i]) if show_header else 1, *(cell_len(r[i]) for r in rows)])
        for i in range(count)
    ]

    def floor(i: int) -> int:
        if kinds[i] == "id":
            return natural[i]
        header_word = max((cell_len(w) for w in headers[i].split()), default=1)
        least = max(header_word if show_header else 1, TEXT_MIN if kinds[i] == "text" else NAME_MIN)
        if kinds[i] == "ids":
            least = max([least, *(cell_len(w) for r in rows for w in r[i].split())])
        return min(natural[i], least)

    room = width - 2 * (count - 1)  # two blanks between columns
    order = [[i for i in range(count) if kinds[i] == "text"]]
    order.append([i for i in range(count) if kinds[i] in ("name", "ids")])
    widths = fit(natural, [floor(i) for i in range(count)], order, room)

    table: Table = Table(box=None, header_style="bold", pad_edge=False, show_header=show_header)
    for i, header in enumerate(headers):
        table.add_column(
            header,
            width=widths[i],
            no_wrap=kinds[i] == "id",
            overflow="fold",
            style="bold" if not show_header and i == 0 else None,
        )
    for row in rows:
        table.add_row(*(Text(value) for value in row))  # values are never markup
    console = Console(width=max(width, sum(widths) + 2 * (count - 1)), highlight=False)
    with console.capture() as captured:
        console.print(table)
    return [TRAILING_BLANKS.sub(r"\1", line) for line in captured.get().splitlines()]


def render_rows(
    items: Sequence[dict[str, Any]], columns: Sequence[Column], *, wide: bool, width: int
) -> list[str]:
    """Return the lines of a list table (ids shortened unless `wide`)."""
    values = [[cell(item, column.value) for column in columns] for item in items]
    kinds: list[str] = []
    for i, column in enumerate(columns):
        present = [row[i] for row in values if row[i] != "-"]
        singles = [v for v in present if isinstance(v, str) and is_uuid(v)]
        lists = [v for v in present if isinstance(v, list)]
        if not wide:
            short = short_ids([*singles, *(x for v in lists for x in v)])
            for row in values:
                value = row[i]
                if isinstance(value, list):
                    row[i] = [short[x.lower()] for x in value]
                elif is_uuid(value):
                    row[i] = short[value.lower()]
        if present and len(singles) == len(present):
            kinds.append("id")
        elif lists:
            kinds.append("ids")
        else:
            kinds.append("text" if column.text else "name")
    rows = [[", ".join(v) if isinstance(v, list) else v for v in row] for row in values]
    return table_lines([c.header for c in columns], rows, kinds=kinds, width=width)


def emit(
    data: Any,
    *,
    output: Format,
    quiet: bool = False,
    columns: Sequence[Column] = (),
    id_field: str = "id",
    wide: bool = False,
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
    width = terminal_width()
    if isinstance(data, list):
        if items:
            lines(render_rows(items, columns, wide=wide, width=width))
        else:
            print("(none)", file=sys.stderr)
        return
    # One item: a field per line, ids in full.
    pairs: list[list[str]] = []
    for key, value in data.items() if isinstance(data, dict) else []:
        if isinstance(value, dict | list) and value and not all(isinstance(v, str) for v in value):
            text = json.dumps(value, default=str)
        else:
            shown = cell({key: value}, key)
            text = ", ".join(shown) if isinstance(shown, list) else shown
        pairs.append([key, text])
    lines(
        table_lines(
            ["FIELD", "VALUE"],
            pairs,
            kinds=["id", "text"],
            width=width,
            show_header=False,
        )
    )


def lines(rows: Iterable[str]) -> None:
    """Print plain lines (logs, streams)."""
    for row in rows:
        print(row, flush=True)
