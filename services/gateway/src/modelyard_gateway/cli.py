"""`modelyard-gateway serve [--host] [--port]` and `modelyard-gateway migrate`."""

from __future__ import annotations

from collections.abc import Sequence

from modelyard_common.cli import service_main
from modelyard_gateway.settings import GatewaySettings


def _migrate() -> None:
    from modelyard_gateway.migrations import migrate

    migrate(GatewaySettings().database_url)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the gateway's command line."""
    service_main(
        prog="modelyard-gateway",
        app_path="modelyard_gateway.app:factory",
        default_port=8000,
        migrate=_migrate,
        argv=argv,
        settings=GatewaySettings,
    )
