"""`modelyard-gateway serve [--host] [--port]`, `migrate` and `reseal`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from modelyard_common.cli import service_main
from modelyard_common.db import make_engine, make_sessionmaker
from modelyard_gateway.crypto import SecretBox
from modelyard_gateway.instances.secrets import reseal_secrets
from modelyard_gateway.settings import GatewaySettings


def _migrate() -> None:
    from modelyard_gateway.migrations import migrate

    migrate(GatewaySettings().database_url)


async def _reseal_all(settings: GatewaySettings) -> str:
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            report = await reseal_secrets(session, box=SecretBox(settings.encryption_key))
    finally:
        await engine.dispose()
    return (
        f"re-sealed {report.resealed} secrets of {report.instances} instances under the newest "
        f"key; moved {report.moved_headers} credential headers into secret_headers"
    )


def _reseal() -> None:
    try:
        print(asyncio.run(_reseal_all(GatewaySettings())))
    except ValueError as exc:
        print(f"modelyard-gateway reseal: nothing changed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def main(argv: Sequence[str] | None = None) -> None:
    """Run the gateway's command line."""
    service_main(
        prog="modelyard-gateway",
        app_path="modelyard_gateway.app:create_app",
        default_port=8000,
        migrate=_migrate,
        argv=argv,
        settings=GatewaySettings,
        commands={
            "reseal": (
                "seal every stored secret under the newest MODELYARD_GATEWAY_ENCRYPTION_KEY",
                _reseal,
            )
        },
    )
