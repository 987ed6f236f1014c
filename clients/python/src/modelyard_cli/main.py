"""The `modelyard` command: root options, contexts, login, and the error policy.

Exit codes: 0 ok; 1 the operation failed (the service refused it, a deploy failed, a service was
unreachable, nothing has the name or id prefix given); 2 bad usage (unknown option or context,
unreadable file, a name or id prefix that several things match: they are listed). Service errors
print as one line: `error: 422 Unprocessable Content: ... (field: message; ...)`.
Imports of the SDK, httpx, Rich and YAML happen inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from modelyard_cli import deployer, gateway, registry, rollouts
from modelyard_cli.config import DEFAULTS, ENV_OVERRIDES, Config, UsageProblem
from modelyard_cli.output import Column, Format, emit
from modelyard_cli.session import STATE, OutputOpt, QuietOpt, context_values, examples

app = typer.Typer(
    name="modelyard",
    help="Modelyard from the terminal: govern models, ship versions to devices, serve them."
    " Wherever a command takes an id, a name or the id's first characters (as tables show"
    " them, 4 at least) do too; --wide or -o json show full ids.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(
        "modelyard login --dev --sub alice --role admin --workspace default",
        "modelyard models create echo-chat --learning-type supervised",
        "modelyard version push echo-chat ./project --title v1",
        "modelyard deploy echo-chat --selector site=lab",
        'modelyard chat echo-chat "hello" --key "$KEY"',
    ),
)
# Workspace roles (viewer < editor < admin) and `approver`, who decides model approvals.
DEV_ROLES = ("viewer", "editor", "admin", "approver")
context_app = typer.Typer(help="Named contexts: where the services are and who you are.")


@app.callback()
def root(
    context: Annotated[
        str | None,
        typer.Option("--context", "-c", help="use this context (default: the current one)"),
    ] = None,
) -> None:
    """Modelyard from the terminal."""
    STATE.context = context


app.add_typer(registry.models_app, name="models")
app.add_typer(registry.systems_app, name="systems")
app.add_typer(registry.policy_app, name="policy")
app.command("link", epilog=registry.LINK_EXAMPLES)(registry.link)
app.command("unlink", epilog=registry.LINK_EXAMPLES)(registry.unlink)
app.add_typer(deployer.version_app, name="version")
app.add_typer(deployer.version_app, name="versions", hidden=True)
app.command(
    "deploy",
    epilog=examples(
        "modelyard deploy echo-chat --device edge-01",
        "modelyard deploy echo-chat:3 --selector site=berlin --no-wait -q",
    ),
)(deployer.deploy)
app.add_typer(deployer.deployments_app, name="deployments")
app.add_typer(deployer.devices_app, name="devices")
app.add_typer(rollouts.rollout_app, name="rollout")
app.add_typer(rollouts.rollout_app, name="rollouts", hidden=True)
app.command("logs", epilog=examples("modelyard logs 5b7e04d2", "modelyard logs 5b7e04d2 -f"))(
    deployer.logs
)
app.add_typer(gateway.groups_app, name="groups")
app.add_typer(gateway.instances_app, name="instances")
app.add_typer(gateway.keys_app, name="keys")
app.command("chat", epilog=gateway.CHAT_EXAMPLES)(gateway.chat)
app.add_typer(gateway.gateway_app, name="gateway")
app.add_typer(context_app, name="context")


@app.command(
    "dev-token",
    epilog=examples("modelyard dev-token --sub alice --role editor --workspace acme"),
)
def dev_token(
    sub: Annotated[str, typer.Option(help="who the token is for")],
    workspace: Annotated[str, typer.Option()],
    role: Annotated[
        list[str] | None,
        typer.Option(
            help="viewer, editor, admin or approver (decides model approvals); repeat for several"
            " (default: admin)"
        ),
    ] = None,
    ttl_hours: Annotated[float, typer.Option()] = 12.0,
) -> None:
    """Print a JWT signed with MODELYARD_JWT_SECRET (development mode only)."""
    print(mint_dev_token(sub=sub, roles=role, workspace=workspace, ttl_hours=ttl_hours))


def mint_dev_token(*, sub: str, roles: list[str] | None, workspace: str, ttl_hours: float) -> str:
    """Return a dev token signed the way the services check it (libs/common)."""
    for name in roles or []:
        if name not in DEV_ROLES:
            raise UsageProblem(f"--role is one of {', '.join(DEV_ROLES)}, not {name!r}")
    try:
        from modelyard_common.devtoken import dev_token as sign
    except ImportError as exc:
        raise UsageProblem(
            "dev tokens need modelyard-common: pip install 'modelyard-client[dev]'"
        ) from exc
    return sign(sub=sub, roles=roles or ["admin"], workspace=workspace, ttl_hours=ttl_hours)


@app.command(
    "login",
    epilog=examples(
        "modelyard login --dev --sub alice --role admin --workspace default",
        'modelyard --context prod login --token "$TOKEN" --registry-url https://registry.example',
        "modelyard --context prod login --issuer https://id.example --client-id modelyard-cli",
        "modelyard login --issuer https://id.example --client-id modelyard-cli --device",
    ),
)
def login(
    token: Annotated[str | None, typer.Option(help="store this bearer token")] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="mint a dev token (MODELYARD_JWT_SECRET) and store it")
    ] = False,
    sub: Annotated[str | None, typer.Option(help="--dev: who you are")] = None,
    role: Annotated[list[str] | None, typer.Option(help="--dev: a role; repeat")] = None,
    issuer: Annotated[str | None, typer.Option(help="OpenID Connect issuer URL")] = None,
    client_id: Annotated[str | None, typer.Option(help="the CLI's client id at the issuer")] = None,
    scope: Annotated[str, typer.Option()] = "openid profile offline_access",
    resource: Annotated[
        str | None,
        typer.Option(help="the APIs' audience, sent as RFC 8707 `resource` (if your IdP needs it)"),
    ] = None,
    device: Annotated[
        bool, typer.Option("--device", help="device code sign-in (no browser on this machine)")
    ] = False,
    browser: Annotated[bool, typer.Option(help="open the browser (else print the URL)")] = True,
    workspace: Annotated[str | None, typer.Option(help="workspace of this context")] = None,
    registry_url: Annotated[str | None, typer.Option()] = None,
    deployer_url: Annotated[str | None, typer.Option()] = None,
    gateway_url: Annotated[str | None, typer.Option()] = None,
    gateway_key: Annotated[str | None, typer.Option(help="client key for `chat`")] = None,
) -> None:
    """Sign in and save the credentials in a context (the current one, or --context)."""
    chosen = [bool(token), dev, bool(issuer)]
    if sum(chosen) != 1:
        raise UsageProblem("log in with exactly one of --token, --dev or --issuer")
    config = Config.load()
    name = STATE.context or os.environ.get("MODELYARD_CONTEXT") or config.current_context
    name = name or "default"
    values = dict(config.contexts.get(name, {}))
    for key, value in (
        ("registry_url", registry_url),
        ("deployer_url", deployer_url),
        ("gateway_url", gateway_url),
        ("workspace", workspace),
        ("gateway_key", gateway_key),
    ):
        if value:
            values[key] = value
    for key, default in DEFAULTS.items():
        values.setdefault(key, os.environ.get(ENV_OVERRIDES[key]) or default)
    values.pop("oidc", None)
    if token:
        values["token"] = token
    elif dev:
        if not sub or not (workspace or values.get("workspace")):
            raise UsageProblem("--dev needs --sub and --workspace")
        values["workspace"] = workspace or values["workspace"]
        values["token"] = mint_dev_token(
            sub=sub, roles=role, workspace=values["workspace"], ttl_hours=12
        )
    else:
        values.update(
            oidc_login(
                issuer, client_id, scope=scope, resource=resource, device=device, browser=browser
            )
        )
    config.contexts[name] = values
    config.current_context = name
    config.save()
    print(f"logged in: context {name!r} saved in {config.path}", file=sys.stderr)


def oidc_login(
    issuer: str | None,
    client_id: str | None,
    *,
    scope: str,
    resource: str | None,
    device: bool,
    browser: bool,
) -> dict[str, Any]:
    """Return the context values an OIDC sign-in yields."""
    import webbrowser

    import httpx

    from modelyard_cli import oidc

    if not issuer or not client_id:
        raise UsageProblem("OIDC sign-in needs --issuer and --client-id")

    def open_url(url: str) -> None:
        print(f"Open this address to sign in:\n  {url}", file=sys.stderr, flush=True)
        if browser:
            webbrowser.open(url)

    def show(url: str, code: str) -> None:
        print(f"Open {url} and enter the code {code}", file=sys.stderr, flush=True)

    with httpx.Client(timeout=30) as http:
        if device:
            tokens = oidc.login_with_device_code(
                http, issuer=issuer, client_id=client_id, scope=scope, show=show, resource=resource
            )
        else:
            tokens = oidc.login_with_browser(
                http,
                issuer=issuer,
                client_id=client_id,
                scope=scope,
                open_url=open_url,
                resource=resource,
            )
    return {
        "token": tokens.access_token,
        "oidc": {
            "issuer": issuer,
            "client_id": client_id,
            "resource": resource,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at,
        },
    }


@app.command("logout", epilog=examples("modelyard logout", "modelyard --context prod logout"))
def logout() -> None:
    """Forget the credentials of the current context (or --context)."""
    config = Config.load()
    name, _ = config.resolve(STATE.context)
    stored = config.contexts.get(name, {})
    for key in ("token", "oidc", "gateway_key"):
        stored.pop(key, None)
    config.save()
    print(f"logged out of context {name!r}", file=sys.stderr)


@context_app.command("list", epilog=examples("modelyard context list -o json"))
def context_list(output: OutputOpt = Format.table, quiet: QuietOpt = False) -> None:
    """List the contexts (secrets are never printed)."""
    config = Config.load()
    rows = [
        {
            "name": name,
            "current": "*" if name == config.current_context else "",
            "workspace": values.get("workspace"),
            "registry_url": values.get("registry_url"),
            "logged_in": bool(values.get("token")),
        }
        for name, values in config.contexts.items()
    ]
    columns = [
        Column(k.upper().replace("_", " "), k)
        for k in ("current", "name", "workspace", "registry_url", "logged_in")
    ]
    emit(rows, output=output, quiet=quiet, columns=columns, id_field="name")


@context_app.command("use", epilog=examples("modelyard context use prod"))
def context_use(name: str) -> None:
    """Make a context the current one."""
    config = Config.load()
    config.resolve(name)  # a usage problem when it does not exist
    config.current_context = name
    config.save()
    print(f"now using context {name!r}", file=sys.stderr)


@context_app.command("show", epilog=examples("modelyard context show -o yaml"))
def context_show(output: OutputOpt = Format.table) -> None:
    """Show the context in use, with environment overrides applied (secrets masked)."""
    _, name, values = context_values()
    shown = {"name": name, **values}
    for key in ("token", "gateway_key"):
        if shown.get(key):
            shown[key] = "***" + str(shown[key])[-4:]
    if isinstance(shown.get("oidc"), dict):
        shown["oidc"] = {k: v for k, v in shown["oidc"].items() if k != "refresh_token"}
        expires = shown["oidc"].get("expires_at")
        if expires:
            shown["oidc"]["expires_in_s"] = int(float(expires) - time.time())
    emit(shown, output=output)


@context_app.command("delete", epilog=examples("modelyard context delete old"))
def context_delete(name: str) -> None:
    """Delete a context."""
    config = Config.load()
    config.resolve(name)
    del config.contexts[name]
    if config.current_context == name:
        config.current_context = None
    config.save()
    print(f"deleted context {name!r}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; turn known failures into one line on stderr and an exit code."""
    from modelyard_cli.errors import exit_code_of

    try:
        app(args=list(argv) if argv is not None else None, prog_name="modelyard")
    except Exception as exc:  # noqa: BLE001 (every failure gets an exit code, never a traceback)
        code, message = exit_code_of(exc)
        if code is None:
            raise
        print(message, file=sys.stderr)
        sys.exit(code)
