"""Commands written once for every kind of resource: show one, list some, act on one.

Each `*_command` registers a Typer command on `app` whose options are the same wherever it is
used (`REF -o -q`, `-o -q -w`, `REF`); what differs is the SDK call, passed in as a function of
`(my, ops, ref)` (`ops` is `modelyard_client.operations`, imported when the command runs so that
`--help` stays fast).

`options` serves commands written out by hand: a parameter of theirs can stand for a set of
options that several commands share (`-o -q`, `-o -q -w`, ...), declared once as a function.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import typer

from modelyard_cli.output import Column, Format, emit
from modelyard_cli.session import OutputOpt, QuietOpt, RefArg, WideOpt, client, examples

if TYPE_CHECKING:
    from modelyard_client import Modelyard

# `(my, ops, ref) -> answer`: one SDK call (or lookup) for the resource `ref` names.
OnOne = Callable[["Modelyard", Any, str], Any]
Command = Callable[..., None]


def options(**sets: Callable[..., Any]) -> Callable[[Command], Command]:
    """Decorate a command whose parameters named in `sets` each stand for a set of options.

    On the command line such a parameter shows as the parameters of its function (their types,
    defaults and help), in its place; the command receives what that function returns for them.
    """

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        taken: dict[str, list[str]] = {}  # each set's parameter names
        shown: list[inspect.Parameter] = []
        for parameter in signature.parameters.values():
            if parameter.name not in sets:
                shown.append(parameter)
                continue
            members = inspect.signature(sets[parameter.name], eval_str=True).parameters.values()
            taken[parameter.name] = [member.name for member in members]
            shown.extend(member.replace(kind=parameter.kind) for member in members)

        @functools.wraps(command)
        def run(**values: Any) -> None:
            for name, members in taken.items():
                values[name] = sets[name](**{member: values.pop(member) for member in members})
            command(**values)

        run.__signature__ = signature.replace(parameters=shown)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in shown} | {"return": None}
        return run

    return decorate


class Printing(NamedTuple):
    """How a command prints its answer: the format (-o), ids only (-q), full ids (-w)."""

    output: Format
    quiet: bool
    wide: bool = False

    def emit(self, data: Any, *, columns: Sequence[Column] = (), id_field: str = "id") -> None:
        """Print `data` (a list of items or one item) as asked."""
        emit(
            data,
            output=self.output,
            quiet=self.quiet,
            columns=columns,
            id_field=id_field,
            wide=self.wide,
        )


def printed(output: OutputOpt = Format.table, quiet: QuietOpt = False) -> Printing:
    """The options `-o FORMAT -q` (for `options`)."""
    return Printing(output, quiet)


def printed_wide(
    output: OutputOpt = Format.table, quiet: QuietOpt = False, wide: WideOpt = False
) -> Printing:
    """The options `-o FORMAT -q -w` (for `options`)."""
    return Printing(output, quiet, wide)


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
