"""`modelyard groups|instances|keys|chat|gateway`: the gateway's routing, its OpenAI endpoint
and its request log."""

from __future__ import annotations

import sys
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from modelyard_cli.commands import (
    Printing,
    act_command,
    list_command,
    options,
    printed,
    printed_wide,
    show_command,
)
from modelyard_cli.output import Column, ago, when
from modelyard_cli.registry import resolve
from modelyard_cli.session import (
    RefArg,
    UsageProblem,
    client,
    examples,
    find,
    is_uuid,
    parse_pairs,
    plain,
)

if TYPE_CHECKING:
    from modelyard_client import Modelyard

Kind = Literal["groups", "instances", "keys"]
Strategy = Literal["ordered", "weighted", "least_busy", "latency"]
COLUMNS: dict[Kind, list[Column]] = {
    "groups": [
        Column("ID", "id"),
        Column("NAME", "name"),
        Column("ENABLED", "enabled"),
        Column("INSTANCES", lambda g: len(g.get("instance_ids") or [])),
        Column("REGISTRY MODEL", "registry_model_id"),
    ],
    "instances": [
        Column("ID", "id"),
        Column("NAME", "name"),
        Column("KIND", "kind"),
        Column("TARGET", lambda i: i.get("base_url") or f"{i.get('host')}:{i.get('port')}"),
        Column("UPSTREAM MODEL", "upstream_model"),
        Column("ENABLED", "enabled"),
        Column("HEALTH", lambda i: (i.get("health") or {}).get("status")),
    ],
    "keys": [
        Column("ID", "id"),
        Column("NAME", "name"),
        Column("GROUPS", "groups", text=True),
        Column("HINT", "key_hint"),
        Column("REVOKED", lambda k: ago(k.get("revoked_at")) if k.get("revoked_at") else None),
    ],
}

groups_app = typer.Typer(
    help="Model groups: the names clients put in `model`.", no_args_is_help=True
)
instances_app = typer.Typer(help="Model instances: the gateway's backends.", no_args_is_help=True)
keys_app = typer.Typer(help="Client API keys (shown once, stored hashed).", no_args_is_help=True)
gateway_app = typer.Typer(
    help="The gateway's request log and the workspace's limits.", no_args_is_help=True
)

REQUEST_COLUMNS = [
    Column("AT", lambda r: when(r.get("at"))),
    Column("STATUS", "status"),
    Column("CAUSE", "error_cause"),
    Column("GROUP", "group"),
    Column("INSTANCES", lambda r: " > ".join(r.get("instances") or []) or None, text=True),
    Column("TOKENS", "total_tokens"),
    Column("MS", "duration_ms"),
    Column("KEY", "key_id"),
]


def resolve_gateway(my: Modelyard, kind: Kind, ref: str) -> str:
    """Return the id of a group, instance or key given by id, name or id prefix."""
    from modelyard_client import operations as ops

    if is_uuid(ref):
        return ref
    return str(find(ref, kind[:-1], lambda: my.iterate(ops.list_gateway(kind, limit=100)))["id"])


def _common(app: typer.Typer, kind: Kind) -> None:
    """Register list, get and delete for one gateway resource."""
    one = kind[:-1]
    list_command(
        app,
        "list",
        lambda my, ops: list(my.iterate(ops.list_gateway(kind))),
        columns=COLUMNS[kind],
        doc=f"List {kind}.",
        example=[f"modelyard {kind} list -o json"],
    )
    show_command(
        app,
        "get",
        lambda my, ops, ref: my.send(ops.get_gateway(kind, resolve_gateway(my, kind, ref))),
        doc=f"Show one {one}.",
        example=[f"modelyard {kind} get NAME-OR-ID"],
    )
    verb = "revoke" if kind == "keys" else "delete"

    def delete(my: Modelyard, ops: Any, ref: str) -> str:
        resource_id = resolve_gateway(my, kind, ref)
        my.send(ops.delete_gateway(kind, resource_id))
        return resource_id

    act_command(
        app,
        verb,
        delete,
        done=f"{verb}d {one}",
        doc=f"{verb.capitalize()} a {one}.",
        example=[f"modelyard {kind} {verb} NAME-OR-ID"],
    )


for _app, _kind in ((groups_app, "groups"), (instances_app, "instances"), (keys_app, "keys")):
    _common(_app, _kind)  # type: ignore[arg-type]


def strategy_body(
    strategy: str,
    weights: list[str] | None,
    default_weight: int | None,
    sticky: str | None,
    instance_id: Any,
) -> dict[str, Any] | None:
    """Return a group's `strategy` from the create options (None: the default, `ordered`).

    `weights` are `INSTANCE=N` (name or id, resolved by `instance_id`); `sticky` is `key` or
    `header:NAME`.
    """
    if strategy != "weighted" and (weights or default_weight is not None or sticky):
        raise UsageProblem("--weight, --default-weight and --sticky go with --strategy weighted")
    if strategy == "ordered":
        return None
    body: dict[str, Any] = {"type": strategy}
    if weights:
        given = parse_pairs(weights, "--weight")
        try:
            body["weights"] = {instance_id(ref): int(n) for ref, n in given.items()}
        except ValueError as exc:
            raise UsageProblem("--weight takes INSTANCE=N with a whole number N") from exc
    if default_weight is not None:
        body["default_weight"] = default_weight
    if sticky == "key":
        body["sticky"] = {"by": "key"}
    elif sticky:
        by, _, header = sticky.partition(":")
        if by != "header" or not header:
            raise UsageProblem(f"--sticky takes key or header:NAME, not {sticky!r}")
        body["sticky"] = {"by": "header", "header": header}
    return body


@groups_app.command(
    "create",
    epilog=examples(
        "modelyard groups create echo-chat --model echo-chat   # follows its deployments",
        "modelyard groups create chat --instance openai-eu --instance local-llm",
        "modelyard groups create chat --instance a --instance b --strategy weighted "
        "--weight a=90 --weight b=10 --sticky header:x-session-id",
    ),
)
@options(out=printed)
def create_group(
    name: str,
    model: Annotated[
        str | None, typer.Option(help="registry model (name or id) whose deployments serve it")
    ] = None,
    instance: Annotated[
        list[str] | None, typer.Option(help="instance name or id, in failover order; repeat")
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    strategy: Annotated[
        Strategy, typer.Option(help="how each request orders the instances")
    ] = "ordered",
    weight: Annotated[
        list[str] | None, typer.Option(help="weighted: INSTANCE=N, a relative share; repeat")
    ] = None,
    default_weight: Annotated[
        int | None, typer.Option(help="weighted: the share of instances without --weight")
    ] = None,
    sticky: Annotated[
        str | None, typer.Option(help="weighted: keep a client on one instance: key|header:NAME")
    ] = None,
    log_bodies: Annotated[
        bool, typer.Option("--log-bodies", help="keep prompts and answers in the request log")
    ] = False,
    *,
    out: Printing,
) -> None:
    """Create a model group."""
    from modelyard_client import operations as ops

    body: dict[str, Any] = {"name": name}
    if description:
        body["description"] = description
    if log_bodies:
        body["log_bodies"] = True
    with client() as my:
        if model:
            body["registry_model_id"] = resolve(my, "models", model)["id"]
        if instance:
            body["instance_ids"] = [resolve_gateway(my, "instances", i) for i in instance]
        chosen = strategy_body(
            strategy,
            weight,
            default_weight,
            sticky,
            lambda ref: resolve_gateway(my, "instances", ref),
        )
        if chosen is not None:
            body["strategy"] = chosen
        out.emit(my.send(ops.create_gateway("groups", body)))


@instances_app.command(
    "create",
    epilog=examples(
        "modelyard instances create local-llm --kind local --host 10.0.0.5 --port 8080 "
        "--upstream-model llama3",
        "modelyard instances create openai-eu --kind cloud --base-url https://api.example/v1 "
        "--token-file ./token --upstream-model gpt-4o-mini",
    ),
)
@options(out=printed)
def create_instance(
    name: str,
    kind: Annotated[str, typer.Option(help="local or cloud")],
    upstream_model: Annotated[str, typer.Option(help="the model name sent upstream")],
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    protocol: Annotated[str | None, typer.Option(help="e.g. openai")] = None,
    base_url: Annotated[str | None, typer.Option()] = None,
    token_file: Annotated[
        typer.FileText | None, typer.Option(help="file holding the cloud token (write-only)")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="default request parameter key=value; repeat")
    ] = None,
    *,
    out: Printing,
) -> None:
    """Create a backend instance."""
    from modelyard_cli.registry import given, parse_sets
    from modelyard_client import operations as ops

    body = given(
        name=name,
        kind=kind,
        upstream_model=upstream_model,
        host=host,
        port=port,
        protocol=protocol,
        base_url=base_url,
    )
    if token_file is not None:
        body["token"] = token_file.read().strip()
    if param:
        parse_pairs(param, "--param")
        body["default_params"] = parse_sets(param)
    with client() as my:
        out.emit(my.send(ops.create_gateway("instances", body)))


@instances_app.command("check", epilog=examples("modelyard instances check local-llm"))
@options(out=printed)
def check_instance(ref: RefArg, out: Printing) -> None:
    """Probe a backend now; exit 1 when it does not answer."""
    from modelyard_client import operations as ops

    with client() as my:
        result = plain(my.send(ops.check_instance(resolve_gateway(my, "instances", ref))))
    out.emit(result, id_field="ok")
    if not result.get("ok"):
        raise typer.Exit(1)


# The four limits of a key or of the workspace's ceiling (0 lifts one when changing it).
RpmOpt = Annotated[int | None, typer.Option(help="requests per minute (0: none)")]
TpmOpt = Annotated[int | None, typer.Option(help="tokens per minute (0: none)")]
PerDayOpt = Annotated[int | None, typer.Option(help="token budget per UTC day (0: none)")]
PerMonthOpt = Annotated[int | None, typer.Option(help="token budget per UTC month (0: none)")]
Limits = dict[str, int | None]


def limits_given(
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    tokens_per_day: PerDayOpt = None,
    tokens_per_month: PerMonthOpt = None,
) -> Limits:
    """The limit options (for `options`): the limits given on the command line (0 means: no
    limit)."""
    given = {
        "requests_per_minute": rpm,
        "tokens_per_minute": tpm,
        "tokens_per_day": tokens_per_day,
        "tokens_per_month": tokens_per_month,
    }
    return {name: (value or None) for name, value in given.items() if value is not None}


@keys_app.command(
    "create",
    epilog=examples("KEY=$(modelyard keys create helpdesk-ui --group echo-chat -q)"),
)
@options(limits=limits_given, out=printed)
def create_key(
    name: str,
    group: Annotated[list[str] | None, typer.Option(help="a group it may use; repeat")] = None,
    *,
    limits: Limits,
    expires: Annotated[
        str | None, typer.Option(help="when it stops working (RFC 3339, e.g. 2027-01-01T00:00Z)")
    ] = None,
    out: Printing,
) -> None:
    """Create a client key; the key is printed once (with -q: the key alone)."""
    from modelyard_client import operations as ops

    with client() as my:
        created = my.send(
            ops.create_key(name, group or [], limits=limits or None, expires_at=expires)
        )
    out.emit(created, id_field="key")


@keys_app.command(
    "limits",
    epilog=examples(
        "modelyard keys limits helpdesk-ui --rpm 60 --tokens-per-day 1000000",
        "modelyard keys limits helpdesk-ui --rpm 0   # 0 lifts that limit",
    ),
)
@options(changes=limits_given, out=printed)
def set_key_limits(
    key: Annotated[str, typer.Argument(help="the key's name, id or id prefix")],
    changes: Limits,
    out: Printing,
) -> None:
    """Change a key's limits and budgets; the ones not given stay as they are."""
    from modelyard_client import operations as ops

    with client() as my:
        current = my.send(ops.get_gateway("keys", resolve_gateway(my, "keys", key)))
        limits = {**current["limits"], **changes}
        updated = my.send(ops.update_key(current["id"], {"limits": limits}, etag=current["etag"]))
    out.emit(updated, id_field="id")


@gateway_app.command(
    "limits",
    epilog=examples("modelyard gateway limits --rpm 6000 --tokens-per-month 100000000"),
)
@options(changes=limits_given, out=printed)
def set_workspace_limits(changes: Limits, out: Printing) -> None:
    """Show the workspace's ceiling on every key; with options, change it (admins)."""
    from modelyard_client import operations as ops

    with client() as my:
        current = my.send(ops.get_workspace_limits())
        if changes:
            current = my.send(ops.update_workspace_limits(changes, etag=current["etag"]))
    out.emit(current, id_field="workspace")


def chat(
    group: Annotated[str, typer.Argument(help="the model group")],
    prompt: Annotated[str, typer.Argument(help="the user message; - reads it from stdin")],
    key: Annotated[
        str | None,
        typer.Option(help="client key (sk-...); default: $MODELYARD_GATEWAY_KEY or the context's"),
    ] = None,
    system: Annotated[str | None, typer.Option(help="a system message first")] = None,
) -> None:
    """Ask a model group and print the answer as it streams in (trailing blanks dropped)."""
    if prompt == "-":
        prompt = sys.stdin.read()
    messages = [{"role": "user", "content": prompt}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    with client() as my:
        if not (key or my.endpoints.gateway_key):
            raise UsageProblem("chat needs a client key: --key sk-... or MODELYARD_GATEWAY_KEY")
        held = ""  # trailing whitespace, written only when more text follows it
        try:
            for text in my.chat_stream(group, messages, key=key):
                shown = (held + text).rstrip()
                held = (held + text)[len(shown) :]
                if shown:
                    sys.stdout.write(shown)
                    sys.stdout.flush()
        finally:
            sys.stdout.write("\n")  # the answer ends with exactly one newline


CHAT_EXAMPLES = examples(
    'modelyard chat echo-chat "hello" --key "$KEY"',
    'echo "summarise this" | modelyard chat echo-chat -',
)


@gateway_app.command(
    "requests",
    epilog=examples(
        "modelyard gateway requests --group chat --status 5xx",
        "modelyard gateway requests --since 2026-12-01T00:00:00Z --export december.csv",
        "modelyard gateway requests --key support-ui --export - --format jsonl | jq .status",
    ),
)
@options(out=printed_wide)
def requests(
    since: Annotated[str | None, typer.Option(help="from this time on (RFC 3339)")] = None,
    until: Annotated[str | None, typer.Option(help="before this time (RFC 3339)")] = None,
    key: Annotated[str | None, typer.Option(help="client key (name, id or id prefix)")] = None,
    group: Annotated[str | None, typer.Option(help="model group name")] = None,
    status: Annotated[str | None, typer.Option(help="a status (503) or a class (5xx)")] = None,
    cause: Annotated[
        str | None, typer.Option(help="error cause, e.g. model_not_found, http_5xx")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="registry model (name or id) the group follows")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="show at most this many (newest first)")] = 50,
    export: Annotated[
        str | None,
        typer.Option(help="write every match to this file (- for stdout) instead of a table"),
    ] = None,
    export_format: Annotated[
        str | None,
        typer.Option("--format", help="csv or jsonl (default: from the file name, else csv)"),
    ] = None,
    *,
    out: Printing,
) -> None:
    """List the gateway's logged client requests, or export them as CSV or JSON lines."""
    from modelyard_client import operations as ops

    filters: dict[str, Any] = {"since": since, "until": until, "group": group}
    filters["error_cause"] = cause
    if status is not None:
        filters.update(_status_filter(status))
    fmt = _export_format(export, export_format)
    with client() as my:
        if key is not None:
            filters["key_id"] = resolve_gateway(my, "keys", key)
        if model is not None:
            filters["registry_model_id"] = (
                model if is_uuid(model) else resolve(my, "models", model)["id"]
            )
        if export is None:
            call = ops.list_requests(limit=min(limit, 200), **filters)
            items = list(islice(my.iterate(call), limit))
            out.emit(items, columns=REQUEST_COLUMNS)
            return
        exported = ops.export_requests(fmt, **filters)
        if export == "-":
            for chunk in my.stream_bytes(exported):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        target = Path(export)
        with target.open("wb") as file:
            size = my.download(exported, file)
    if not out.quiet:
        print(f"wrote {target} ({size} bytes, {fmt})", file=sys.stderr)


def _status_filter(status: str) -> dict[str, Any]:
    """Return the filter a --status value means: one status, or a class like 5xx."""
    value = status.strip().lower()
    if len(value) == 3 and value[0] in "12345" and value[1:] == "xx":
        return {"status_class": value}
    if value.isdigit() and 100 <= int(value) <= 599:
        return {"status": int(value)}
    raise UsageProblem(f"--status is a status (404) or a class (4xx), not {status!r}")


def _export_format(export: str | None, given: str | None) -> Literal["csv", "jsonl"]:
    """Return the export format: --format, else the file's suffix, else csv."""
    chosen = given or ("jsonl" if export and export.endswith((".jsonl", ".ndjson")) else "csv")
    if chosen not in ("csv", "jsonl"):
        raise UsageProblem(f"--format is csv or jsonl, not {chosen!r}")
    return "jsonl" if chosen == "jsonl" else "csv"
