"""What every command shares: the chosen context, the SDK client, option types, name lookup."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from modelyard_cli.config import Config, UsageProblem
from modelyard_cli.output import Format, is_uuid

if TYPE_CHECKING:
    from modelyard_client import Modelyard

MIN_PREFIX = 4  # hex digits an id prefix needs, as git asks of a short commit id
UUID_SHAPE = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
OutputOpt = Annotated[
    Format, typer.Option("--output", "-o", help="table for people, json or yaml for scripts")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="print ids only")]
RefArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME|ID", help="a name, an id, or the start of an id (as lists show it)"
    ),
]
WideOpt = Annotated[
    bool, typer.Option("--wide", "-w", help="full ids in the table (default: 8-character prefixes)")
]


class State:
    """Global options (set by the root callback)."""

    context: str | None = None


STATE = State()


EXAMPLE_WIDTH = 76  # an example line fits 80 columns inside the help's margins
# An epilog's example commands, by epilog (for the test that reads them back from --help).
EXAMPLES: dict[str, tuple[str, ...]] = {}


def examples(*commands: str) -> str:
    """Return a command's help epilog: its example invocations, one per line.

    Typer's Rich help joins an epilog's lines into paragraphs (a blank line separates them) and
    strips each paragraph, so every line is a paragraph here, and starts with markup (the dimmed
    `$` prompt) that keeps a continuation line's indent. A command longer than a line is split
    between arguments with a trailing backslash, so it still pastes into a shell.
    """
    lines = ["[bold]Examples:[/bold]"]
    for command in commands:
        for n, line in enumerate(wrap_command(command, EXAMPLE_WIDTH - 2)):
            lines.append(f"[dim]{'$' if n == 0 else ' '}[/dim] {escape_markup(line)}")
    epilog = "\n\n".join(lines) + "\n"
    EXAMPLES[epilog] = commands
    return epilog


def wrap_command(command: str, width: int) -> list[str]:
    """Return a shell command as lines of at most `width` characters where it can: broken
    between words (an option stays with its value), continued by ` \\`, indented by 4."""
    words = shell_words(command)
    units: list[str] = []
    for word in words:
        follows_option = units and units[-1].startswith("-") and " " not in units[-1]
        if follows_option and not word.startswith(("-", "#", "|")):
            units[-1] = f"{units[-1]} {word}"
        else:
            units.append(word)
    lines: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + 1 + len(unit) + 2 > width:
            lines.append(current + " \\")
            current = f"    {unit}"
        else:
            current = f"{current} {unit}" if current else unit
    lines.append(current)
    return lines


def shell_words(command: str) -> list[str]:
    """Return a command's words, quotes kept (`--set 'a b'` is two words); a `# comment`
    is one word."""
    words: list[str] = []
    word = ""
    quote = ""
    for n, char in enumerate(command):
        if quote:
            word += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            word += char
            quote = char
        elif char == "#" and not word:
            words.append(command[n:].strip())
            return words
        elif char == " ":
            if word:
                words.append(word)
            word = ""
        else:
            word += char
    if word:
        words.append(word)
    return words


def escape_markup(text: str) -> str:
    """Return `text` with what Rich would read as a markup tag escaped."""
    return re.sub(r"(\\*)(\[[a-z#/@][^[]*?])", lambda m: f"{m[1]}{m[1]}\\{m[2]}", text)


def context_values() -> tuple[Config, str, dict[str, Any]]:
    """Return the config, the chosen context's name and its values (env overrides applied)."""
    config = Config.load()
    name, values = config.resolve(STATE.context)
    return config, name, values


def client() -> Modelyard:
    """Return an SDK client for the chosen context (refreshing an expired OIDC token first)."""
    from modelyard_client import Endpoints, Modelyard

    config, name, values = context_values()
    oidc = values.get("oidc") or {}
    expires_at = float(oidc.get("expires_at") or 0)
    if oidc.get("refresh_token") and expires_at and expires_at < time.time() + 30:
        values = refresh_login(config, name, values)
    return Modelyard(
        Endpoints(
            registry_url=values["registry_url"],
            deployer_url=values["deployer_url"],
            gateway_url=values["gateway_url"],
            token=values.get("token"),
            gateway_key=values.get("gateway_key"),
        )
    )


def refresh_login(config: Config, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Return the context's values with a refreshed access token (saved to the config)."""
    import httpx

    from modelyard_cli import oidc

    settings = values["oidc"]
    with httpx.Client(timeout=30) as http:
        tokens = oidc.refresh(
            http,
            issuer=settings["issuer"],
            client_id=settings["client_id"],
            refresh_token=settings["refresh_token"],
            resource=settings.get("resource"),
        )
    stored = config.contexts.setdefault(name, {})
    stored["token"] = tokens.access_token
    stored["oidc"] = {
        **settings,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at,
    }
    config.save()
    return {**values, **stored}


def id_prefix(ref: str) -> str | None:
    """Return `ref` in lower case when it can be the start of an id: 4 hex digits or more, with
    dashes where a UUID has them; None otherwise."""
    ref = ref.lower()
    if len(ref) > len(UUID_SHAPE):
        return None
    for char, shape in zip(ref, UUID_SHAPE, strict=False):
        if (char == "-") != (shape == "-") or (char != "-" and char not in "0123456789abcdef"):
            return None
    return ref if len(ref.replace("-", "")) >= MIN_PREFIX else None


def find(
    ref: str,
    what: str,
    every: Callable[[], Iterable[dict[str, Any]]],
    *,
    named: Callable[[], Iterable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Return the one item `ref` refers to, in docker's order: its exact name, else a unique id
    prefix. `every` lists all the items a prefix may match (called only for a prefix); `named`
    lists the candidates for a name (default: the same list). Callers fetch a full id directly.

    Nothing found is a failure (exit 1), like a 404; several found is bad usage (exit 2), with
    the candidates listed.
    """
    candidates = list(named() if named is not None else every())
    listed = candidates if named is None else None
    matches = [item for item in candidates if item.get("name") == ref]
    if len(matches) > 1:
        raise AmbiguousReference(f"{len(matches)} {what}s are named {ref!r}: use an id", matches)
    if matches:
        return matches[0]
    prefix = id_prefix(ref)
    if prefix is None:
        hint = f" (an id prefix has at least {MIN_PREFIX} hex digits)" if is_hexish(ref) else ""
        raise NameNotFound(f"no {what} named {ref!r}{hint}")
    if listed is None:
        listed = list(every())
    return by_prefix(
        listed, ref, what, none=f"no {what} named {ref!r} or with an id starting {ref!r}"
    )


def resolve_id(ref: str, what: str, every: Callable[[], Iterable[dict[str, Any]]]) -> str:
    """Return the id `ref` gives: a full id as it is, else the one id among `every()` that starts
    with it (bad usage when `ref` cannot be the start of an id; see `by_prefix`)."""
    if is_uuid(ref):
        return ref
    if id_prefix(ref) is None:
        raise UsageProblem(f"a {what} is an id or the start of one, not {ref!r}")
    return str(by_prefix(every(), ref, what)["id"])


def by_prefix(
    items: Iterable[dict[str, Any]], ref: str, what: str, *, none: str | None = None
) -> dict[str, Any]:
    """Return the one item whose id starts with `ref` (at least 4 hex digits); nothing found is a
    failure (message `none`), several found is bad usage, with the candidates listed."""
    prefix = id_prefix(ref) or ref.lower()
    matches = [item for item in items if str(item.get("id", "")).lower().startswith(prefix)]
    if not matches:
        raise NameNotFound(none or f"no {what} with an id starting {ref!r}")
    if len(matches) > 1:
        raise AmbiguousReference(
            f"{ref!r} starts the ids of {len(matches)} {what}s: give more of the id", matches
        )
    return matches[0]


def is_hexish(ref: str) -> bool:
    """Return whether `ref` looks like the start of an id (hex digits and dashes)."""
    return bool(ref) and all(c in "0123456789abcdef-" for c in ref.lower())


def pick_by_name(items: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    """Return the one item named `name`, or whose id starts with `name` (see `find`)."""
    return find(name, what, lambda: items)


class NameNotFound(Exception):
    """A name or id prefix given for an id matches nothing: exit 1."""


class AmbiguousReference(UsageProblem):
    """A name or id prefix matches several items: bad usage (exit 2), the candidates listed."""

    def __init__(self, message: str, candidates: list[dict[str, Any]]) -> None:
        shown = [
            f"  {item.get('id')}  {item.get('name') or item.get('number') or ''}".rstrip()
            for item in candidates[:10]
        ]
        if len(candidates) > 10:
            shown.append(f"  ... and {len(candidates) - 10} more")
        super().__init__("\n".join([message, *shown]))
        self.candidates = candidates


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, str]:
    """Return `k=v` arguments as a mapping; a usage problem for one without `=`."""
    result: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageProblem(f"{option} takes key=value, not {pair!r}")
        result[key] = value
    return result


__all__ = [
    "STATE",
    "OutputOpt",
    "QuietOpt",
    "RefArg",
    "UsageProblem",
    "WideOpt",
    "client",
    "examples",
    "is_uuid",
]


def plain(value: object) -> dict[str, Any]:
    """Return an SDK answer (a TypedDict) as the plain mapping the printers take."""
    return cast(dict[str, Any], value)
