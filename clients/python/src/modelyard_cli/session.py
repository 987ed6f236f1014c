"""What every command shares: the chosen context, the SDK client, option types, name lookup."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from modelyard_cli.config import Config, UsageProblem
from modelyard_cli.output import Format

if TYPE_CHECKING:
    from modelyard_client import Modelyard

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

OutputOpt = Annotated[
    Format, typer.Option("--output", "-o", help="table for people, json or yaml for scripts")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="print ids only")]


class State:
    """Global options (set by the root callback)."""

    context: str | None = None


STATE = State()


def examples(*commands: str) -> str:
    """Return a command's help epilog listing example invocations."""
    body = "\n".join(f"    $ {command}" for command in commands)
    return f"Examples:\n\n{body}\n"


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


def is_uuid(value: str) -> bool:
    """Return whether `value` is a UUID (an id rather than a name)."""
    return bool(UUID_RE.match(value))


def pick_by_name(items: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    """Return the one item named `name`; a clear error when none or several are."""
    matches = [item for item in items if item.get("name") == name]
    if not matches:
        raise NameNotFound(f"no {what} named {name!r}")
    if len(matches) > 1:
        ids = ", ".join(str(m["id"]) for m in matches)
        raise NameNotFound(f"{len(matches)} {what}s are named {name!r} ({ids}): use an id")
    return matches[0]


class NameNotFound(Exception):
    """A name given for an id matches nothing (or several things): exit 1."""


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, str]:
    """Return `k=v` arguments as a mapping; a usage problem for one without `=`."""
    result: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageProblem(f"{option} takes key=value, not {pair!r}")
        result[key] = value
    return result


__all__ = ["STATE", "OutputOpt", "QuietOpt", "UsageProblem", "client", "examples"]


def plain(value: object) -> dict[str, Any]:
    """Return an SDK answer (a TypedDict) as the plain mapping the printers take."""
    return cast(dict[str, Any], value)
