"""The ingress server: uvicorn inside the agent's event loop, on the device's advertised address.

The ingress app itself is built by `app.create_ingress_app`.
"""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn
from fastapi import FastAPI


class IngressServer:
    """Runs the ingress app with uvicorn inside the agent's event loop."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        # The process's own server (or the test runner) handles signals, not this one.
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving; return once the socket listens."""
        self._task = asyncio.create_task(self.server.serve(), name="ingress")
        deadline = asyncio.get_running_loop().time() + 10.0
        while not self.server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            if self._task.done():
                await self._task  # raises what made it stop
                raise OSError("the ingress server stopped at once")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the ingress server did not start")
            await asyncio.sleep(0.02)

    @property
    def port(self) -> int:
        """Return the port the ingress listens on."""
        sockets = self.server.servers[0].sockets if self.server.servers else []
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def stop(self) -> None:
        """Stop serving (in-flight requests get a moment to finish)."""
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
