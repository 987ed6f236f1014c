"""`modelyard-agent serve [--host] [--port]`."""

from __future__ import annotations

from collections.abc import Sequence

from modelyard_agent.settings import AgentSettings
from modelyard_common.cli import service_main


def main(argv: Sequence[str] | None = None) -> None:
    """Run the agent's command line."""
    service_main(
        prog="modelyard-agent",
        app_path="modelyard_agent.app:create_app",
        default_port=AgentSettings().port,
        migrate=None,
        argv=argv,
        settings=AgentSettings,
    )
