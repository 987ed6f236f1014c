"""`modelyard-agent serve [--host] [--port]` and `modelyard-agent register`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from modelyard_agent.settings import AgentSettings
from modelyard_common.cli import Listener, service_main

DEFAULT_CONFIG = Path("/etc/modelyard-agent/agent.env")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the agent's command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["register"]:
        sys.exit(register(args[1:]))
    service_main(
        prog="modelyard-agent",
        app_path="modelyard_agent.app:create_app",
        default_port=AgentSettings().port,
        migrate=None,
        argv=args,
        settings=AgentSettings,
        also_listens=_ingress,
    )


def _ingress() -> list[Listener]:
    """The ingress listens too: a taken ingress port stops `serve` as its own port does."""
    settings = AgentSettings()
    host = settings.ingress_host or settings.advertise_host
    return [Listener(host, settings.ingress_port, "MODELYARD_AGENT_INGRESS_PORT")]


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def register(argv: Sequence[str]) -> int:
    """Register this device with a provisioning token and write its config; return exit code."""
    parser = argparse.ArgumentParser(
        prog="modelyard-agent register",
        description="Register this device with the deployer and write the agent's config.",
    )
    parser.add_argument("--deployer", required=True, help="the deployer's URL, e.g. https://...")
    parser.add_argument("--provisioning-token", required=True, help="a `myprov_...` token")
    parser.add_argument("--name", default=os.uname().nodename, help="device name (hostname)")
    parser.add_argument("--label", action="append", type=_label, default=[], help="key=value")
    parser.add_argument("--advertise-host", help="address other machines reach this device at")
    parser.add_argument("--ingress-port", type=int, default=8004)
    parser.add_argument("--broker", help="broker URL, no login (default: the deployer's answer)")
    parser.add_argument("--data-dir", default="/var/lib/modelyard-agent")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="env file to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing config")
    args = parser.parse_args(argv)
    if args.config.exists() and not args.force:
        print(
            f"{args.config} exists: this machine is registered already. Registering again makes "
            "a new device; pass --force to do that.",
            file=sys.stderr,
        )
        return 2
    body: dict[str, object] = {"name": args.name, "labels": dict(args.label)}
    if args.advertise_host:
        body["advertise_host"] = args.advertise_host
    body["ingress_port"] = args.ingress_port
    deployer = args.deployer.rstrip("/")
    try:
        response = httpx.post(
            f"{deployer}/v1/devices/register",
            json=body,
            headers={"Authorization": f"Bearer {args.provisioning_token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        print(f"cannot reach the deployer at {deployer}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 201:
        try:
            problem = response.json()
            reason = problem.get("detail") or problem.get("title")
        except ValueError:
            reason = response.text[:300]
        print(f"registration refused ({response.status_code}): {reason}", file=sys.stderr)
        return 1
    device = response.json()
    broker = args.broker or device.get("broker_url") or "amqp://127.0.0.1:5672/"
    values = {
        "MODELYARD_AGENT_DEVICE_ID": device["id"],
        "MODELYARD_AGENT_TOKEN": device["token"],
        "MODELYARD_AGENT_DEPLOYER_URL": deployer,
        "MODELYARD_AGENT_AMQP_URL": broker,
        "MODELYARD_AGENT_DATA_DIR": args.data_dir,
        "MODELYARD_AGENT_INGRESS_PORT": str(args.ingress_port),
    }
    if args.advertise_host:
        values["MODELYARD_AGENT_ADVERTISE_HOST"] = args.advertise_host
    write_config(args.config, values)
    print(f"registered device {device['name']} ({device['id']}); config written to {args.config}")
    print("start the agent with one of:")
    print(f"  systemd:   EnvironmentFile={args.config} ExecStart=modelyard-agent serve")
    print(
        f"  container: docker run -d --env-file {args.config} "
        "-v /var/run/docker.sock:/var/run/docker.sock "
        f"-v {args.data_dir}:{args.data_dir} --network host modelyard/device-agent"
    )
    return 0


def write_config(path: Path, values: dict[str, str]) -> None:
    """Write an env file readable by its owner only (mode 600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{key}={value}\n" for key, value in values.items())
    os.chmod(partial, 0o600)
    os.replace(partial, path)
