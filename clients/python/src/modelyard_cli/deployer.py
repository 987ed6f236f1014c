"""`modelyard version|deploy|deployments|devices|logs`: shipping versions to devices."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from modelyard_cli.commands import (
    OnOne,
    Printing,
    act_command,
    options,
    printed,
    printed_wide,
    show_command,
)
from modelyard_cli.output import Column, ago
from modelyard_cli.registry import resolve
from modelyard_cli.session import (
    NameNotFound,
    UsageProblem,
    by_prefix,
    client,
    examples,
    find,
    id_prefix,
    is_uuid,
    parse_pairs,
    plain,
    resolve_id,
)

if TYPE_CHECKING:
    from modelyard_client import Modelyard

VERSION_COLUMNS: list[Column] = [
    Column("ID", "id"),
    Column("NUMBER", "number"),
    Column("TITLE", "title", text=True),
    Column("SIZE", lambda v: f"{v.get('size_bytes', 0) / 1e6:.1f} MB"),
    Column("SHA-256", lambda v: str(v.get("sha256", ""))[:16]),
    Column("CREATED", lambda v: ago(v.get("created_at"))),
]
DEPLOYMENT_COLUMNS: list[Column] = [
    Column("ID", "id"),
    Column("MODEL", lambda d: d.get("model_name") or d.get("model_id")),
    Column("VERSION", "version_number"),
    Column("DEVICE", "device_name"),
    Column("DESIRED", "desired_state"),
    Column("STATE", "state"),
    Column("MESSAGE", "state_message", text=True),
    Column("UPDATED", lambda d: ago(d.get("updated_at"))),
]
DEVICE_COLUMNS: list[Column] = [
    Column("ID", "id"),
    Column("NAME", "name"),
    Column("STATUS", "status"),
    Column("LABELS", "labels", text=True),
    Column("AGENT", "agent_version"),
    Column("LAST SEEN", lambda d: ago(d.get("last_seen_at"))),
]
VersionArg = Annotated[
    str,
    typer.Argument(
        metavar="VERSION",
        help="an id, the start of one (as lists show it), or MODEL:NUMBER",
    ),
]
DeploymentArg = Annotated[
    str,
    typer.Argument(metavar="DEPLOYMENT", help="an id or the start of one (as lists show it)"),
]
DeviceOpt = Annotated[list[str] | None, typer.Option("--device", help="device name or id; repeat")]
SelectorOpt = Annotated[
    list[str] | None, typer.Option("--selector", "-l", help="label=value; repeat")
]
# States after which a deployment does nothing more on its own.
SETTLED = frozenset({"running", "stopped", "removed", "failed", "rolled_back", "cancelled"})
FAILED = frozenset({"failed", "rolled_back", "cancelled"})

version_app = typer.Typer(help="Model versions: a zip of the project plus its run manifest.")
deployments_app = typer.Typer(
    help="Deployments: one model version on one device. Without a command: the list.",
    invoke_without_command=True,
)
devices_app = typer.Typer(
    help="Devices that run the agent. Without a command: the list.", invoke_without_command=True
)


def resolve_device(my: Modelyard, ref: str) -> str:
    """Return the id of a device given by id, name or id prefix."""
    from modelyard_client import operations as ops

    if is_uuid(ref):
        return ref

    def named() -> list[dict[str, Any]]:
        return [plain(d) for d in my.send(ops.list_devices(name=ref, limit=100))["items"]]

    def every() -> Iterator[dict[str, Any]]:
        return (plain(d) for d in my.iterate(ops.list_devices(limit=100)))

    return str(find(ref, "device", every, named=named)["id"])


def resolve_version(my: Modelyard, model_id: str, ref: str | None) -> dict[str, Any]:
    """Return a model's version by number, id or id prefix; the latest when `ref` is None."""
    from modelyard_client import operations as ops

    if ref is not None and is_uuid(ref):
        return plain(my.send(ops.get_model_version(ref)))
    if ref is not None and not ref.isdigit() and id_prefix(ref) is None:
        raise UsageProblem(f"a version is a number, an id or the start of one, not {ref!r}")
    versions = [plain(v) for v in my.iterate(ops.list_model_versions(model_id, limit=100))]
    if not versions:
        raise UsageProblem("the model has no version yet: `modelyard version push` one")
    if ref is None:
        return max(versions, key=lambda v: int(v["number"]))
    for candidate in versions:
        if ref.isdigit() and int(candidate["number"]) == int(ref):
            return candidate
    if id_prefix(ref) is not None:
        with contextlib.suppress(NameNotFound):  # a number that starts no id: say so below
            return by_prefix(versions, ref, "version")
    raise UsageProblem(f"the model has no version {ref}")


def resolve_any_version(my: Modelyard, ref: str) -> str:
    """Return the id of a version given as an id, MODEL:NUMBER (or MODEL:ID-PREFIX), or an id
    prefix (looked up among the versions of every model in the workspace)."""
    from modelyard_client import operations as ops

    if is_uuid(ref):
        return ref
    model, colon, version = ref.rpartition(":")
    if colon:
        return str(resolve_version(my, resolve(my, "models", model)["id"], version)["id"])
    if id_prefix(ref) is None:
        raise UsageProblem(f"a version is an id, the start of one, or MODEL:NUMBER, not {ref!r}")
    versions: list[dict[str, Any]] = []
    for archived in (False, True):
        for model_row in my.iterate(ops.list_registry("models", archived=archived, limit=100)):
            listed = my.iterate(ops.list_model_versions(model_row["id"], limit=100))
            versions.extend(plain(v) for v in listed)
    return str(by_prefix(versions, ref, "version")["id"])


def resolve_deployment(my: Modelyard, ref: str) -> str:
    """Return the id of a deployment given as an id or an id prefix."""
    from modelyard_client import operations as ops

    return resolve_id(
        ref, "deployment", lambda: map(plain, my.iterate(ops.list_deployments(limit=100)))
    )


class Targets(NamedTuple):
    """The devices a deploy or a rollout goes to: named (--device), or chosen by their labels."""

    devices: list[str]
    selector: list[str] | None


def targets_given(device: DeviceOpt = None, selector: SelectorOpt = None) -> Targets:
    """The target options (for `options`): devices by name or id, or a label selector."""
    if bool(device) == bool(selector):
        raise UsageProblem("name the targets with --device D... or with --selector k=v...")
    return Targets(device or [], selector)


@version_app.command(
    "push",
    epilog=examples(
        "modelyard version push echo-chat ./my-project --title v1 --comment 'first cut'",
        "modelyard version push echo-chat ./build/project.zip -q",
    ),
)
@options(out=printed)
def push(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="name or id")],
    path: Annotated[Path, typer.Argument(help="a project directory or a .zip")],
    title: Annotated[str | None, typer.Option(help="at most 30 characters")] = None,
    comment: Annotated[str | None, typer.Option(help="at most 512 characters")] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(help="run manifest (YAML/JSON); default: modelyard.yaml in the project"),
    ] = None,
    *,
    out: Printing,
) -> None:
    """Upload a version: a directory is zipped (minus .modelyardignore) with its modelyard.yaml.

    Shows the upload's progress, then prints the new version.
    """
    from modelyard_cli.project import parse_manifest, read_manifest, zip_project

    if not path.exists():
        raise UsageProblem(f"{path} does not exist")
    if manifest is not None:
        if not manifest.is_file():
            raise UsageProblem(f"{manifest} does not exist")
        run_manifest = parse_manifest(manifest.read_text(), source=str(manifest))
    else:
        found = read_manifest(path)
        if found is None:
            raise UsageProblem(f"{path} has no modelyard.yaml: add one or pass --manifest FILE")
        run_manifest = found
    with tempfile.TemporaryDirectory(prefix="modelyard-push-") as scratch:
        if path.is_dir():
            archive = Path(scratch) / f"{path.resolve().name}.zip"
            count = zip_project(path, archive)
            if not out.quiet:
                print(
                    f"packed {count} files ({archive.stat().st_size / 1e6:.1f} MB)", file=sys.stderr
                )
        else:
            archive = path
        version = upload(
            model, archive, run_manifest, title=title, comment=comment, quiet=out.quiet
        )
    out.emit(version)


def upload(
    model: str,
    archive: Path,
    manifest: dict[str, Any],
    *,
    title: str | None,
    comment: str | None,
    quiet: bool,
) -> dict[str, Any]:
    """Return the version created by uploading `archive`, with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from modelyard_client import operations as ops

    size = archive.stat().st_size
    console = Console(stderr=True)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
        transient=False,
    )
    with client() as my, progress:
        model_id = resolve(my, "models", model)["id"]
        task = progress.add_task("uploading", total=size)
        call = ops.create_model_version(
            model_id,
            archive,
            manifest=manifest,
            title=title,
            comment=comment,
            on_progress=lambda n: progress.advance(task, n),
        )
        return plain(my.send(call))


@version_app.command("list", epilog=examples("modelyard version list echo-chat"))
@options(out=printed_wide)
def list_versions(model: Annotated[str, typer.Argument(metavar="MODEL")], out: Printing) -> None:
    """List a model's versions."""
    from modelyard_client import operations as ops

    with client() as my:
        model_id = resolve(my, "models", model)["id"]
        versions = list(my.iterate(ops.list_model_versions(model_id)))
    out.emit(versions, columns=VERSION_COLUMNS)


show_command(
    version_app,
    "get",
    lambda my, ops, ref: my.send(ops.get_model_version(resolve_any_version(my, ref))),
    ref=VersionArg,
    doc="Show a version with its manifest (VERSION: an id, its start, or MODEL:NUMBER).",
    example=["modelyard version get 3f2a9c1e -o json", "modelyard version get echo-chat:2"],
)


def _delete_version(my: Modelyard, ops: Any, ref: str) -> str:
    version_id = resolve_any_version(my, ref)
    my.send(ops.delete_model_version(version_id))
    return version_id


act_command(
    version_app,
    "delete",
    _delete_version,
    ref=VersionArg,
    done="deleted version",
    doc="Delete a version no device runs (VERSION: an id, its start, or MODEL:NUMBER).",
    example=["modelyard version delete echo-chat:1"],
)


@options(targets=targets_given, out=printed_wide)
def deploy(
    target: Annotated[str, typer.Argument(metavar="MODEL[:VERSION]", help="version: number or id")],
    targets: Targets,
    wait: Annotated[bool, typer.Option(help="follow until every device runs or failed")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to follow before giving up")] = 600,
    *,
    out: Printing,
) -> None:
    """Deploy a version (the latest, or MODEL:NUMBER|ID) and follow it live, one line per device."""
    from modelyard_client import operations as ops

    labels = parse_pairs(targets.selector, "--selector")
    model, _, version_ref = target.partition(":")
    with client() as my:
        model_id = resolve(my, "models", model)["id"]
        version = resolve_version(my, model_id, version_ref or None)
        device_ids = [resolve_device(my, d) for d in targets.devices]
        batch = my.send(
            ops.create_deployment(version["id"], device_ids=device_ids, selector=labels)
        )
        deployments = [plain(d) for d in batch["items"]]
        if not deployments:
            raise NoTargets("no device matched: nothing was deployed")
        if not wait:
            out.emit(deployments, columns=DEPLOYMENT_COLUMNS)
            return
        if out.quiet:
            out.emit(deployments)
        follow(my, deployments, version_id=version["id"], timeout=timeout, quiet=out.quiet)


class NoTargets(Exception):
    """A deploy that matched no device (exit 1)."""


class DeployFailed(Exception):
    """At least one target failed (exit 1; the log tails were printed)."""


def retrying(deployment: dict[str, Any]) -> bool:
    """Return whether a failed state is one the agent is still retrying."""
    return "retrying" in str(deployment.get("state_message") or "")


def follow(
    my: Modelyard,
    deployments: list[dict[str, Any]],
    *,
    version_id: str,
    timeout: float,
    quiet: bool,
) -> None:
    """Print each state change of `deployments` until all settle; raise DeployFailed if any fail."""
    from modelyard_client import operations as ops

    last: dict[str, tuple[str, str]] = {}
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    current = {d["id"]: d for d in deployments}
    while len(done) < len(current):
        for deployment_id in [d for d in current if d not in done]:
            deployment = plain(my.send(ops.get_deployment(deployment_id)))
            state = str(deployment["state"])
            seen = (state, str(deployment.get("state_message") or ""))
            if last.get(deployment_id) != seen:
                last[deployment_id] = seen
                if not quiet:
                    stamp = datetime.now().strftime("%H:%M:%S")
                    message = f"  {seen[1]}" if seen[1] else ""
                    print(
                        f"{stamp}  {deployment['device_name']:<20} {state:<12}{message}", flush=True
                    )
            reached = state == "running" and deployment.get("running_version_id") == version_id
            if reached or (state in FAILED and not retrying(deployment)):
                done[deployment_id] = deployment
        if len(done) < len(current):
            if time.monotonic() > deadline:
                pending = ", ".join(
                    f"{current[d]['device_name']} ({last.get(d, ('?', ''))[0]})"
                    for d in current
                    if d not in done
                )
                raise DeployFailed(f"still not settled after {timeout:.0f}s: {pending}")
            time.sleep(0.5)
    failed = [d for d in done.values() if d["state"] != "running"]
    for deployment in failed:
        print(
            f"{deployment['device_name']}: {deployment['state']}: "
            f"{deployment.get('state_message')}",
            file=sys.stderr,
        )
        for line in log_tail(my, deployment["id"]):
            print(f"  | {line}", file=sys.stderr)
    if failed:
        raise DeployFailed(f"{len(failed)} of {len(done)} deployments failed")
    if not quiet:
        print(f"{len(done)} of {len(done)} running")


def log_tail(my: Modelyard, deployment_id: str) -> list[str]:
    """Return the last log lines a deployment's history holds (newest report with any)."""
    from modelyard_client import operations as ops

    page = my.send(ops.get_deployment_history(deployment_id, sort="-recorded_at", limit=50))
    for entry in page["items"]:
        if entry.get("log_tail"):
            return list(entry["log_tail"])
    return []


@deployments_app.callback()
@options(out=printed_wide)
def deployments_list(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="model name or id")] = None,
    device: Annotated[str | None, typer.Option(help="device name or id")] = None,
    state: Annotated[str | None, typer.Option(help="e.g. running, failed")] = None,
    *,
    out: Printing,
) -> None:
    """List deployments with their live state (when no command follows)."""
    if ctx.invoked_subcommand is not None:
        return
    from modelyard_client import operations as ops

    with client() as my:
        filters: dict[str, Any] = {"state": state}
        if model:
            filters["model_id"] = resolve(my, "models", model)["id"]
        if device:
            filters["device_id"] = resolve_device(my, device)
        items = list(my.iterate(ops.list_deployments(**filters)))
    out.emit(items, columns=DEPLOYMENT_COLUMNS)


show_command(
    deployments_app,
    "get",
    lambda my, ops, ref: my.send(ops.get_deployment(resolve_deployment(my, ref))),
    ref=DeploymentArg,
    doc="Show one deployment (by its id or the id's first characters).",
    example=["modelyard deployments get 5b7e04d2"],
)


def _deployment_action(verb: str) -> OnOne:
    """Return what `modelyard deployments VERB ID` does: act, then answer the deployment."""

    def act(my: Modelyard, ops: Any, ref: str) -> Any:
        deployment_id = resolve_deployment(my, ref)
        if verb == "remove":
            result = my.send(ops.remove_deployment(deployment_id))
        else:
            result = my.send(ops.deployment_action(deployment_id, verb))
        return result or {"id": deployment_id}

    return act


for _verb, _doc in (
    ("start", "Run a stopped deployment again."),
    ("stop", "Stop the container (kept on the device)."),
    ("restart", "Restart the container."),
    ("remove", "Remove it from the device."),
    ("rollback", "Go back to the previous version."),
    ("cancel", "Cancel a deployment still on its way."),
):
    show_command(
        deployments_app,
        _verb,
        _deployment_action(_verb),
        ref=DeploymentArg,
        doc=_doc,
        example=[f"modelyard deployments {_verb} 5b7e04d2"],
    )


@deployments_app.command(
    "logs",
    epilog=examples(
        "modelyard deployments logs 5b7e04d2 --tail 50",
        "modelyard deployments logs 5b7e04d2 -f",
        "modelyard deployments logs 5b7e04d2 --since 2026-12-06T08:00:00Z | grep ERROR",
    ),
)
def container_logs(
    ref: DeploymentArg,
    tail: Annotated[
        int, typer.Option("--tail", "-n", min=0, max=10_000, help="how many of the last lines")
    ] = 100,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new lines (Ctrl-C stops)")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="only lines written from this time on (RFC 3339)")
    ] = None,
) -> None:
    """Print what a deployment's container wrote, read from its device (stdout and stderr).

    `modelyard logs` shows the deployment's history instead: its state changes as reported.
    """
    from modelyard_client import operations as ops

    with client() as my:
        deployment_id = resolve_deployment(my, ref)
        call = ops.get_deployment_logs(deployment_id, tail=tail, follow=follow_, since=since)
        with contextlib.suppress(KeyboardInterrupt):
            for chunk in my.stream_bytes(call):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()


def logs(
    ref: DeploymentArg,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new entries (Ctrl-C stops)")
    ] = False,
) -> None:
    """Print a deployment's history: each state change, then the log lines it reported."""
    from modelyard_client import operations as ops

    seen: set[Any] = set()
    with client() as my:
        deployment_id = resolve_deployment(my, ref)
        while True:
            entries = list(
                my.iterate(ops.get_deployment_history(deployment_id, sort="recorded_at"))
            )
            for entry in entries:
                if entry["id"] in seen:
                    continue
                seen.add(entry["id"])
                print(
                    f"{entry.get('occurred_at')}  {entry.get('source'):<8} "
                    f"{entry.get('state'):<12} "
                    f"{entry.get('message') or ''}".rstrip(),
                    flush=True,
                )
                for line in entry.get("log_tail") or []:
                    print(f"  | {line}", flush=True)
            if not follow_:
                return
            time.sleep(1)


@devices_app.callback()
@options(out=printed_wide)
def devices_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="online or offline")] = None,
    label: Annotated[list[str] | None, typer.Option(help="label=value; repeat")] = None,
    *,
    out: Printing,
) -> None:
    """List devices with their status and when they were last seen (when no command follows)."""
    if ctx.invoked_subcommand is not None:
        return
    from modelyard_client import operations as ops

    parse_pairs(label, "--label")
    with client() as my:
        items = list(my.iterate(ops.list_devices(status=status, label=label)))
    out.emit(items, columns=DEVICE_COLUMNS)


show_command(
    devices_app,
    "get",
    lambda my, ops, ref: my.send(ops.get_device(resolve_device(my, ref))),
    doc="Show a device with its capabilities.",
    example=["modelyard devices get edge-01 -o yaml"],
)


@devices_app.command(
    "register", epilog=examples("modelyard devices register edge-01 --label site=berlin")
)
@options(out=printed)
def register_device(
    name: str,
    label: Annotated[list[str] | None, typer.Option(help="label=value; repeat")] = None,
    *,
    out: Printing,
) -> None:
    """Register a device; its token is shown once, here."""
    from modelyard_client import operations as ops

    with client() as my:
        created = my.send(ops.create_device(name, parse_pairs(label, "--label")))
    out.emit(created)


def _revoke_device(my: Modelyard, ops: Any, ref: str) -> str:
    device_id = resolve_device(my, ref)
    my.send(ops.revoke_device(device_id))
    return device_id


act_command(
    devices_app,
    "delete",
    _revoke_device,
    done="revoked device",
    doc="Revoke a device (its token stops working).",
    example=["modelyard devices delete edge-01"],
)
show_command(
    devices_app,
    "rotate-token",
    lambda my, ops, ref: my.send(ops.rotate_device_token(resolve_device(my, ref))),
    id_field="token",
    doc="Issue a new device token (shown once) and revoke the old one.",
    example=["modelyard devices rotate-token edge-01 -q"],
)
