"""Commands written once for every kind of resource: show one, list some, act on one.

Each `*_command` registers a Typer command on `app` whose options are the same wherever it is
used (`REF -o -q`, `-o -q -w`, `REF`); what differs is the SDK call, passed in as a function of
`(my, ops, ref)` (`ops` is `modelyard_client.operations`, imported when the command runs so that
`--help` stays fast).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from modelyard_cli.output import Column, Format, emit
from modelyard_cli.session import OutputOpt, QuietOpt, RefArg, WideOpt, client, examples

if TYPE_CHECKING:
    from modelyard_client import Modelyard

# `(my, ops, ref) -> answer`: one SDK call (or lookup) for the resource `ref` names.
OnOne = Callable[["Modelyard", Any, str], Any]


def _register(
    app: typer.Typer, name: str, command: Callable[..., None], *, doc: str, example: Sequence[str]
) -> None:
    command.__doc__ = doc
    app.command(name, epilog=examples(*example))(command)


def show_command(
    app: typer.Typer,
    name: str,
    fetch: OnOne,
    *,
    doc: str,
    example: Sequence[str],
    ref: Any = RefArg,
    id_field: str = "id",
) -> None:
    """Register `NAME REF [-o FORMAT] [-q]`: print the one item `fetch` answers for REF."""

    def show(ref: RefArg, output: OutputOpt = Format.table, quiet: QuietOpt = False) -> None:
        from modelyard_client import operations as ops

        with client() as my:
            shown = fetch(my, ops, ref)
        emit(shown, output=output, quiet=quiet, id_field=id_field)

    show.__annotations__["ref"] = ref
    _register(app, name, show, doc=doc, example=example)


def list_command(
    app: typer.Typer,
    name: str,
    fetch: Callable[[Modelyard, Any], list[Any]],
    *,
    columns: Sequence[Column],
    doc: str,
    example: Sequence[str],
) -> None:
    """Register `NAME [-o FORMAT] [-q] [-w]`: print the items `fetch(my, ops)` answers."""

    def list_(
        output: OutputOpt = Format.table, quiet: QuietOpt = False, wide: WideOpt = False
    ) -> None:
        from modelyard_client import operations as ops

        with client() as my:
            items = fetch(my, ops)
        emit(items, output=output, quiet=quiet, columns=columns, wide=wide)

    _register(app, name, list_, doc=doc, example=example)


def list_of_one_command(
    app: typer.Typer,
    name: str,
    fetch: OnOne,
    *,
    columns: Sequence[Column],
    doc: str,
    example: Sequence[str],
    ref: Any = RefArg,
    id_field: str = "id",
) -> None:
    """Register `NAME REF [-o FORMAT] [-q] [-w]`: print the items `fetch` answers for REF."""

    def list_(
        ref: RefArg,
        output: OutputOpt = Format.table,
        quiet: QuietOpt = False,
        wide: WideOpt = False,
    ) -> None:
        from modelyard_client import operations as ops

        with client() as my:
            items = list(fetch(my, ops, ref))
        emit(items, output=output, quiet=quiet, columns=columns, id_field=id_field, wide=wide)

    list_.__annotations__["ref"] = ref
    _register(app, name, list_, doc=doc, example=example)


def act_command(
    app: typer.Typer,
    name: str,
    act: OnOne,
    *,
    done: str,
    doc: str,
    example: Sequence[str],
    ref: Any = RefArg,
) -> None:
    """Register `NAME REF`: run `act` (which answers the id it acted on) and print `done ID`."""

    def run(ref: RefArg) -> None:
        from modelyard_client import operations as ops

        with client() as my:
            acted_on = act(my, ops, ref)
        print(f"{done} {acted_on}")

    run.__annotations__["ref"] = ref
    _register(app, name, run, doc=doc, example=example)
