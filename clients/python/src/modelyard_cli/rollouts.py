"""`modelyard rollout create|list|get|watch|pause|resume|abort`: a version to a fleet in waves."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard_cli.commands import OnOne, Printing, options, printed, printed_wide, show_command
from modelyard_cli.deployer import Targets, resolve_any_version, resolve_device, targets_given
from modelyard_cli.output import Column, ago
from modelyard_cli.session import UsageProblem, client, examples, parse_pairs, plain, resolve_id

if TYPE_CHECKING:
    from modelyard_client import Modelyard

ROLLOUT_COLUMNS: list[Column] = [
    Column("ID", "id"),
    Column("STATE", "state"),
    Column("WAVE", lambda r: f"{int(r.get('current_wave', 0)) + 1}/{r.get('wave_count', '?')}"),
    Column("REASON", "reason", text=True),
    Column("BY", "created_by"),
    Column("CREATED", lambda r: ago(r.get("created_at"))),
]
RolloutArg = Annotated[
    str, typer.Argument(metavar="ROLLOUT", help="an id or the start of one (as lists show it)")
]
FINISHED = frozenset({"completed", "aborted"})

rollout_app = typer.Typer(
    help="Rollouts: a version to many devices in waves, gated on health, with abort and rollback."
)


class RolloutAborted(Exception):
    """A watched rollout ended aborted (exit 1)."""


def resolve_rollout(my: Modelyard, ref: str) -> str:
    """Return the id of a rollout given as an id or an id prefix."""
    from modelyard_client import operations as ops

    return resolve_id(ref, "rollout", lambda: map(plain, my.iterate(ops.list_rollouts(limit=100))))


def parse_wave(text: str) -> dict[str, Any]:
    """Return a wave from `N` (devices), `P%` (of the targets) or `label=value` (canary)."""
    if "=" in text:
        return {"selector": parse_pairs(text.split(","), "--wave")}
    try:
        if text.endswith("%"):
            return {"percent": float(text[:-1])}
        return {"count": int(text)}
    except ValueError:
        raise UsageProblem(f"--wave takes N, P% or label=value, not {text!r}") from None


@rollout_app.command(
    "create",
    epilog=examples(
        "modelyard rollout create echo-chat:3 -l site=berlin --wave ring=canary --wave 50% "
        "--wave 50% --soak 120",
        "modelyard rollout create 5b0c1f4e --device edge-01 --device edge-02 --wave 1 --wave 1",
    ),
)
@options(targets=targets_given, out=printed)
def create(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="id, id start or MODEL:NUMBER")],
    wave: Annotated[
        list[str], typer.Option("--wave", help="N devices, P% of them, or label=value; repeat")
    ],
    targets: Targets,
    soak: Annotated[float, typer.Option(help="seconds a wave must run healthy")] = 60,
    failure_percent: Annotated[float, typer.Option(help="abort above this failure share")] = 0,
    min_devices: Annotated[int, typer.Option(help="judged devices before the share counts")] = 1,
    wave_timeout: Annotated[float, typer.Option(help="abort when a wave takes longer")] = 900,
    offline_timeout: Annotated[float, typer.Option(help="skip devices silent this long")] = 300,
    watch_it: Annotated[bool, typer.Option("--watch", help="follow it live until it ends")] = False,
    *,
    out: Printing,
) -> None:
    """Roll a version out in waves (the first wave is the canary)."""
    from modelyard_client import operations as ops

    with client() as my:
        version_id = resolve_any_version(my, version)
        rollout = plain(
            my.send(
                ops.create_rollout(
                    version_id,
                    waves=[parse_wave(w) for w in wave],
                    device_ids=[resolve_device(my, d) for d in targets.devices],
                    selector=parse_pairs(targets.selector, "--selector"),
                    soak_s=soak,
                    abort={
                        "failure_percent": failure_percent,
                        "min_devices": min_devices,
                        "wave_timeout_s": wave_timeout,
                    },
                    offline_timeout_s=offline_timeout,
                )
            )
        )
        if watch_it:
            follow(my, str(rollout["id"]))
            return
    out.emit(rollout, columns=ROLLOUT_COLUMNS)


@rollout_app.command("list", epilog=examples("modelyard rollout list --state running"))
@options(out=printed_wide)
def list_rollouts(
    state: Annotated[str | None, typer.Option(help="running, paused, completed, aborted")] = None,
    *,
    out: Printing,
) -> None:
    """List rollouts, newest first."""
    from modelyard_client import operations as ops

    with client() as my:
        items = [plain(r) for r in my.iterate(ops.list_rollouts(state=state))]
    out.emit(items, columns=ROLLOUT_COLUMNS)


show_command(
    rollout_app,
    "get",
    lambda my, ops, ref: my.send(ops.get_rollout(resolve_rollout(my, ref))),
    ref=RolloutArg,
    doc="Show one rollout with its waves and devices.",
    example=["modelyard rollout get 0b8a3e0e -o yaml"],
)


def progress_lines(rollout: dict[str, Any]) -> list[str]:
    """Return one line per wave (its state and counts) and one per device that has a reason."""
    lines = []
    for wave in rollout.get("waves", []):
        counts = ", ".join(f"{n} {state}" for state, n in sorted(wave["counts"].items()))
        lines.append(f"wave {wave['index'] + 1}: {wave['state']:<11} {counts}")
    for device in rollout.get("devices", []):
        if device.get("reason"):
            lines.append(f"  {device['device_name']:<20} {device['state']:<11} {device['reason']}")
    return lines


def follow(my: Modelyard, rollout_id: str, *, interval: float = 2.0) -> dict[str, Any]:
    """Print the rollout's progress whenever it changes, until it ends; exit 1 if aborted."""
    from modelyard_client import operations as ops

    last: list[str] = []
    while True:
        rollout = plain(my.send(ops.get_rollout(rollout_id)))
        head = f"rollout {rollout_id[:8]} {rollout['state']}"
        if rollout.get("reason"):
            head += f": {rollout['reason']}"
        lines = [head, *progress_lines(rollout)]
        if lines != last:
            stamp = datetime.now().strftime("%H:%M:%S")
            print(f"{stamp}  " + "\n          ".join(lines), flush=True)
            last = lines
        if rollout["state"] in FINISHED:
            if rollout["state"] == "aborted":
                raise RolloutAborted(f"rollout aborted: {rollout.get('reason')}")
            return rollout
        time.sleep(interval)


@rollout_app.command("watch", epilog=examples("modelyard rollout watch 0b8a3e0e"))
def watch(
    ref: RolloutArg,
    interval: Annotated[float, typer.Option(help="seconds between looks")] = 2.0,
) -> None:
    """Print a rollout's progress per wave, live, until it completes or aborts."""
    with client() as my:
        follow(my, resolve_rollout(my, ref), interval=interval)


def _rollout_action(verb: str) -> OnOne:
    """Return what `modelyard rollout VERB ROLLOUT` does: act, then answer the rollout."""
    return lambda my, ops, ref: my.send(ops.rollout_action(resolve_rollout(my, ref), verb))


for _verb, _doc in (
    ("pause", "Hold a rollout: no new wave starts."),
    ("resume", "Move a paused rollout again."),
    ("abort", "Stop a rollout and return updated devices to what they ran."),
):
    show_command(
        rollout_app,
        _verb,
        _rollout_action(_verb),
        ref=RolloutArg,
        doc=_doc,
        example=[f"modelyard rollout {_verb} 0b8a3e0e"],
    )
