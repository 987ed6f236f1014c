"""`modelyard models|systems|link|unlink`: the governance inventory in the registry."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from modelyard_cli.commands import (
    Printing,
    list_of_one_command,
    options,
    printed,
    printed_wide,
    show_command,
)
from modelyard_cli.output import Column, when
from modelyard_cli.session import (
    QuietOpt,
    RefArg,
    UsageProblem,
    client,
    examples,
    find,
    is_uuid,
)

if TYPE_CHECKING:
    from modelyard_client import Modelyard

Kind = Literal["models", "systems"]
COLUMNS: dict[Kind, list[Column]] = {
    "models": [
        Column("ID", "id"),
        Column("NAME", "name"),
        Column("LEARNING TYPE", "learning_type"),
        Column("USED FOR", "functionality", text=True),
        Column("TAGS", "tags", text=True),
        Column("APPROVAL", "approval"),  # archived ones are listed only on request (--archived)
    ],
    "systems": [
        Column("ID", "id"),
        Column("NAME", "name"),
        Column("RISK", "risk_level"),
        Column("STATUS", "status"),
        Column("OWNER", "owner", text=True),
        Column("ARCHIVED", "archived"),
    ],
}
HISTORY_COLUMNS: list[Column] = [
    Column("WHEN", lambda e: when(e.get("at"))),
    Column("WHO", "actor"),
    Column("ACTION", "action"),
    Column(
        "CHANGES",
        lambda e: "; ".join(
            f"{field}: {change.get('old')!r} -> {change.get('new')!r}"
            for field, change in (e.get("changes") or {}).items()
        ),
        text=True,
    ),
]
LINK_COLUMNS: list[Column] = [
    Column("SYSTEM", lambda link: link.get("system_name") or link.get("system_id")),
    Column("MODEL", lambda link: link.get("model_name") or link.get("model_id")),
    Column("DESCRIPTION OF USE", "description_of_use", text=True),
]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="a tag; repeat for several")]
DescriptionOpt = Annotated[
    str | None, typer.Option("--description", "-d", help="markdown; @FILE reads it from a file")
]


def resolve(my: Modelyard, kind: Kind, ref: str) -> dict[str, Any]:
    """Return the model or system an id, an exact name or a unique id prefix refers to (a prefix
    is looked up among the workspace's archived ones too)."""
    from modelyard_client import operations as ops

    if is_uuid(ref):
        result: dict[str, Any] = my.send(ops.get_registry(kind, ref))
        return result

    def named() -> list[dict[str, Any]]:
        return list(my.send(ops.list_registry(kind, q=ref, limit=100))["items"])

    def every() -> Iterator[dict[str, Any]]:
        for archived in (False, True):
            yield from my.iterate(ops.list_registry(kind, archived=archived, limit=100))

    return find(ref, kind[:-1], every, named=named)


def text_arg(value: str | None) -> str | None:
    """Return an option's text, read from a file for `@FILE`."""
    if value and value.startswith("@"):
        try:
            with open(value[1:]) as handle:
                return handle.read()
        except OSError as exc:
            raise UsageProblem(f"cannot read {value[1:]}: {exc.strerror}") from exc
    return value


def given(**fields: Any) -> dict[str, Any]:
    """Return the fields that were given (None means: not on the command line)."""
    return {key: value for key, value in fields.items() if value is not None}


def described(description: DescriptionOpt = None, tag: TagOpt = None) -> dict[str, Any]:
    """The options every model and system is created with (for `options`): the fields given."""
    return given(description=text_arg(description), tags=tag)


def parse_sets(pairs: list[str] | None) -> dict[str, Any]:
    """Return `field=value` pairs; a value that parses as JSON is taken as JSON."""
    changes: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageProblem(f"--set takes field=value, not {pair!r}")
        try:
            changes[key] = json.loads(raw)
        except ValueError:
            changes[key] = raw
    return changes


def registry_app(kind: Kind) -> typer.Typer:
    """Return the command group shared by `models` and `systems`."""
    one = kind[:-1]
    app = typer.Typer(help=f"AI {kind} in the registry.", no_args_is_help=True)

    @app.command(
        "list",
        epilog=examples(f"modelyard {kind} list", f"modelyard {kind} list --tag payments -o json"),
    )
    @options(out=printed_wide)
    def list_(
        q: Annotated[str | None, typer.Option("--search", "-s", help="text search")] = None,
        tag: TagOpt = None,
        archived: Annotated[bool, typer.Option(help="archived ones instead")] = False,
        limit: Annotated[int, typer.Option(help="at most this many")] = 100,
        *,
        out: Printing,
    ) -> None:
        """List AI {kind}."""
        from modelyard_client import operations as ops

        with client() as my:
            call = ops.list_registry(kind, q=q, tag=tag, archived=archived, limit=min(limit, 100))
            items = []
            for item in my.iterate(call):
                items.append(item)
                if len(items) >= limit:
                    break
        out.emit(items, columns=COLUMNS[kind])

    list_.__doc__ = f"List AI {kind} (all pages, up to --limit)."

    show_command(
        app,
        "get",
        lambda my, ops, ref: resolve(my, kind, ref),
        doc="Show one by id or name.",
        example=[f"modelyard {kind} get NAME-OR-ID -o yaml"],
    )

    @app.command(
        "edit",
        epilog=examples(
            f"modelyard {kind} edit NAME --set provider=in-house",
            f'modelyard {kind} edit NAME --set \'tags=["a","b"]\' --if-match "$ETAG"',
        ),
    )
    @options(out=printed)
    def edit(
        ref: RefArg,
        sets: Annotated[
            list[str] | None,
            typer.Option("--set", help="field=value (JSON values allowed); repeat"),
        ] = None,
        description: DescriptionOpt = None,
        if_match: Annotated[
            str | None,
            typer.Option(help="the ETag you read; default: the current one, read just now"),
        ] = None,
        *,
        out: Printing,
    ) -> None:
        """Change fields; a change made by someone else in between is reported as a conflict."""
        from modelyard_client import PreconditionFailedError
        from modelyard_client import operations as ops

        changes = parse_sets(sets)
        if description is not None:
            changes["description"] = text_arg(description)
        if not changes:
            raise UsageProblem("nothing to change: pass --set field=value or --description")
        with client() as my:
            current = resolve(my, kind, ref)
            etag = if_match or current["etag"]
            try:
                updated = my.send(ops.update_registry(kind, current["id"], changes, etag=etag))
            except PreconditionFailedError as exc:
                raise ConflictReported(
                    f"conflict: {one} {current['id']} changed since ETag {etag} was read "
                    f"(now {my.send(ops.get_registry(kind, current['id']))['etag']}); "
                    "read it again and re-apply your change"
                ) from exc
        out.emit(updated)

    archive_doc = "Archive (soft delete): hidden from lists, kept with its history."
    _archive_command(app, kind, "archive", restore=False, done="archived", doc=archive_doc)
    _archive_command(
        app, kind, "unarchive", restore=True, done="restored", doc="Restore an archived one."
    )

    @app.command("delete", epilog=examples(f"modelyard {kind} delete ID --yes"))
    def delete(
        ref: RefArg,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Delete for good (admin; refused while a link uses it: archive instead)."""
        from modelyard_client import operations as ops

        with client() as my:
            target = resolve(my, kind, ref)
            if not yes and sys.stdin.isatty():
                typer.confirm(f"Delete {one} {target['name']} for good?", abort=True)
            my.send(ops.delete_registry(kind, target["id"]))
        print(target["id"] if quiet else f"deleted {one} {target['name']} ({target['id']})")

    list_of_one_command(
        app,
        "history",
        lambda my, ops, ref: my.iterate(ops.registry_history(kind, resolve(my, kind, ref)["id"])),
        columns=HISTORY_COLUMNS,
        doc="Show the audit trail: who changed what, when, old -> new.",
        example=[f"modelyard {kind} history NAME"],
    )

    return app


def _archive_command(
    app: typer.Typer, kind: Kind, verb: str, *, restore: bool, done: str, doc: str
) -> None:
    """Register `modelyard KIND archive|unarchive REF [-q]`."""

    def run(ref: RefArg, quiet: QuietOpt = False) -> None:
        from modelyard_client import operations as ops

        with client() as my:
            target = resolve(my, kind, ref)
            my.send(ops.archive_registry(kind, target["id"], restore=restore))
        print(target["id"] if quiet else f"{done} {kind[:-1]} {target['name']} ({target['id']})")

    run.__doc__ = doc
    example = "ID" if restore else "NAME"
    app.command(verb, epilog=examples(f"modelyard {kind} {verb} {example}"))(run)


def _create(kind: Kind, body: dict[str, Any], out: Printing) -> None:
    """Create a model or system from the fields given and print it."""
    from modelyard_client import operations as ops

    with client() as my:
        out.emit(my.send(ops.create_registry(kind, body)))


class ConflictReported(Exception):
    """An edit lost against a concurrent change (exit 1, message given)."""


models_app = registry_app("models")
systems_app = registry_app("systems")


@models_app.command(
    "create",
    epilog=examples(
        "modelyard models create fraud-detector --learning-type supervised "
        "--functionality 'fraud detection' --tag payments",
        "MODEL=$(modelyard models create echo-chat --learning-type supervised -q)",
    ),
)
@options(fields=described, out=printed)
def create_model(
    name: str,
    learning_type: Annotated[
        str, typer.Option(help="supervised, unsupervised, semi_supervised or reinforcement")
    ],
    functionality: Annotated[str | None, typer.Option(help="what it is used for")] = None,
    foundations: Annotated[str | None, typer.Option(help="architecture, e.g. transformer")] = None,
    provider: Annotated[str | None, typer.Option()] = None,
    *,
    fields: dict[str, Any],
    out: Printing,
) -> None:
    """Register an AI model."""
    body = given(
        name=name,
        learning_type=learning_type,
        functionality=functionality,
        foundations=foundations,
        provider=provider,
    )
    _create("models", {**body, **fields}, out)


APPROVAL_COLUMNS: list[Column] = [
    Column("STATE", "state"),
    Column("REQUESTED BY", "requested_by"),
    Column("DECIDED BY", "decided_by"),
    Column("DECISION", "decision_comment", text=True),
    Column("CONDITIONS", lambda a: (a.get("conditions") or {}).get("text") or "", text=True),
]
CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="why (recorded in history)")]


def _approval(ref: str, out: Printing, call: Callable[[Any, str], Any] | None = None) -> None:
    """Run `call(ops, model_id)` (or read the approval) and print the approval it answers."""
    from modelyard_client import operations as ops

    with client() as my:
        model_id = resolve(my, "models", ref)["id"]
        shown = my.send(call(ops, model_id) if call else ops.get_model_approval(model_id))
    out.emit(dict(shown), columns=APPROVAL_COLUMNS, id_field="state")


@models_app.command("approval", epilog=examples("modelyard models approval echo-chat -o yaml"))
@options(out=printed)
def approval(ref: RefArg, out: Printing) -> None:
    """Show a model's approval: state, conditions, who asked and who decided."""
    _approval(ref, out)


@models_app.command(
    "review", epilog=examples("modelyard models review echo-chat -m 'model card attached'")
)
@options(out=printed)
def review(ref: RefArg, comment: CommentOpt, out: Printing) -> None:
    """Ask for a model to be reviewed (editor); another person then decides."""
    _approval(ref, out, lambda ops, mid: ops.request_model_review(mid, comment))


@models_app.command("approve", epilog=examples("modelyard models approve echo-chat -m 'reviewed'"))
@options(out=printed)
def approve(ref: RefArg, comment: CommentOpt, out: Printing) -> None:
    """Approve a model in review (approver or admin; not the person who asked)."""
    _approval(ref, out, lambda ops, mid: ops.decide_model_approval(mid, "approved", comment))


@models_app.command(
    "restrict",
    epilog=examples(
        "modelyard models restrict echo-chat -m 'pilot' --conditions 'Berlin only' "
        "--label site=berlin --group echo-chat"
    ),
)
@options(out=printed)
def restrict(
    ref: RefArg,
    comment: CommentOpt,
    conditions: Annotated[str, typer.Option(help="the conditions, in words")],
    label: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE a target device must carry; repeat (same key: any of)"),
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option(help="a gateway group that may serve it; repeat")
    ] = None,
    *,
    out: Printing,
) -> None:
    """Approve a model in review with conditions: where it may be deployed and served."""
    labels: dict[str, list[str]] = {}
    for pair in label or []:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise UsageProblem(f"--label takes KEY=VALUE, not {pair!r}")
        labels.setdefault(key, []).append(value)
    body = {"text": conditions, "device_labels": labels, "gateway_groups": list(group or [])}
    _approval(
        ref, out, lambda ops, mid: ops.decide_model_approval(mid, "restricted", comment, body)
    )


@models_app.command("block", epilog=examples("modelyard models block echo-chat -m 'bias found'"))
@options(out=printed)
def block(ref: RefArg, comment: CommentOpt, out: Printing) -> None:
    """Block a model (approver or admin): under `enforce` its deployments stop, groups refuse."""
    _approval(ref, out, lambda ops, mid: ops.decide_model_approval(mid, "blocked", comment))


@models_app.command("retire", epilog=examples("modelyard models retire echo-chat -m 'replaced'"))
@options(out=printed)
def retire(ref: RefArg, comment: CommentOpt, out: Printing) -> None:
    """Retire a model for good (approver or admin)."""
    _approval(ref, out, lambda ops, mid: ops.retire_model(mid, comment))


policy_app = typer.Typer(
    help="The workspace's policy gate: enforce, warn or off.", no_args_is_help=True
)
POLICY_COLUMNS: list[Column] = [
    Column("WORKSPACE", "workspace"),
    Column("GATE", "gate"),
    Column("DEFAULT", "is_default"),
    Column("BY", "updated_by"),
    Column("COMMENT", "comment", text=True),
]


@policy_app.command("show", epilog=examples("modelyard policy show -o json"))
@options(out=printed)
def policy_show(out: Printing) -> None:
    """Show the workspace's gate."""
    _policy(lambda ops: ops.get_policy(), out)


@policy_app.command("set", epilog=examples("modelyard policy set warn -m 'pilot for a month'"))
@options(out=printed)
def policy_set(
    gate: Annotated[Literal["enforce", "warn", "off"], typer.Argument(help="enforce, warn or off")],
    comment: Annotated[str, typer.Option("--comment", "-m", help="why")] = "",
    *,
    out: Printing,
) -> None:
    """Set the workspace's gate (admin); the deployer and gateway follow within seconds."""
    _policy(lambda ops: ops.set_policy(gate, comment), out)


def _policy(call: Callable[[Any], Any], out: Printing) -> None:
    """Send `call(ops)` and print the policy it answers."""
    from modelyard_client import operations as ops

    with client() as my:
        shown = my.send(call(ops))
    out.emit(dict(shown), columns=POLICY_COLUMNS, id_field="gate")


list_of_one_command(
    models_app,
    "systems",
    lambda my, ops, ref: my.send(ops.list_model_systems(resolve(my, "models", ref)["id"])),
    columns=LINK_COLUMNS,
    id_field="system_id",
    doc="List the systems that use a model, with how they use it.",
    example=["modelyard models systems fraud-detector"],
)


@systems_app.command(
    "create",
    epilog=examples(
        "modelyard systems create checkout-risk --risk-level high --purpose 'fraud prevention'"
    ),
)
@options(fields=described, out=printed)
def create_system(
    name: str,
    risk_level: Annotated[
        str, typer.Option(help="EU AI Act risk: unacceptable, high, limited or minimal")
    ],
    purpose: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="lifecycle status, e.g. in_use")] = None,
    *,
    fields: dict[str, Any],
    out: Printing,
) -> None:
    """Register an AI system."""
    body = given(name=name, risk_level=risk_level, purpose=purpose, owner=owner, status=status)
    _create("systems", {**body, **fields}, out)


list_of_one_command(
    systems_app,
    "models",
    lambda my, ops, ref: my.send(ops.list_system_models(resolve(my, "systems", ref)["id"])),
    columns=LINK_COLUMNS,
    id_field="model_id",
    doc="List the models a system uses, with how it uses them.",
    example=["modelyard systems models helpdesk"],
)


@options(out=printed)
def link(
    system: Annotated[str, typer.Argument(metavar="SYSTEM")],
    model: Annotated[str, typer.Argument(metavar="MODEL")],
    use: Annotated[str, typer.Option("--use", "-u", help="the description of use (required)")],
    out: Printing,
) -> None:
    """Record that a system uses a model, and how."""
    from modelyard_client import operations as ops

    with client() as my:
        system_id = resolve(my, "systems", system)["id"]
        model_id = resolve(my, "models", model)["id"]
        created = my.send(ops.link_model(system_id, model_id, use))
    out.emit(dict(created), id_field="model_id")


def unlink(
    system: Annotated[str, typer.Argument(metavar="SYSTEM")],
    model: Annotated[str, typer.Argument(metavar="MODEL")],
) -> None:
    """Remove a system's use of a model."""
    from modelyard_client import operations as ops

    with client() as my:
        system_row = resolve(my, "systems", system)
        model_row = resolve(my, "models", model)
        my.send(ops.unlink_model(system_row["id"], model_row["id"]))
    print(f"unlinked {model_row['name']} from {system_row['name']}")


LINK_EXAMPLES = examples(
    "modelyard link helpdesk echo-chat --use 'answers first-line questions'",
    "modelyard unlink helpdesk echo-chat",
)
