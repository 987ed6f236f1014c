"""The routing engine of one gateway replica: catalog, shared health board, upstream client.

It keeps what every request needs in memory and keeps it current (database notifications, a
reload loop, the shared state refresh and the background health checks). The app's lifespan
builds, starts and stops it (`app.py`); the proxy and the admin routes read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Coroutine
from typing import Annotated, Any

import aiohttp
import asyncpg
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard_common.governance import Governance
from modelyard_common.outbox import asyncpg_dsn
from modelyard_gateway.crypto import SecretBox
from modelyard_gateway.db import CONFIG_CHANNEL, STATE_CHANNEL
from modelyard_gateway.egress import EgressRefused
from modelyard_gateway.routing.catalog import Catalog, InstanceRoute
from modelyard_gateway.routing.health import HealthBoard, decode_notification
from modelyard_gateway.routing.repository import claim_check, publish_check
from modelyard_gateway.routing.upstream import Upstreams, probe
from modelyard_gateway.settings import GatewaySettings

log = logging.getLogger("modelyard.gateway.runtime")


class RoutingEngine:
    """Everything one gateway replica keeps between requests to route them."""

    def __init__(
        self, settings: GatewaySettings, engine: AsyncEngine, *, governance: Governance
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.box = SecretBox(settings.encryption_key)
        self.egress = settings.egress_policy()
        self.catalog = Catalog(engine, self.box, egress=self.egress, governance=governance)
        self.board = HealthBoard(
            cooldown_failures=settings.cooldown_failures,
            cooldown_s=settings.cooldown_s,
            cooldown_max_s=settings.cooldown_max_s,
            cooldown_jitter=settings.cooldown_jitter,
            failure_window_s=settings.failure_window_s,
            max_retry_after_s=settings.max_retry_after_s,
        )
        # Names this replica in what it reports (a restart is a new one: its counts start anew).
        self.replica_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._upstreams: Upstreams | None = None
        self._config_dirty = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()

    @property
    def upstreams(self) -> Upstreams:
        """Return the upstream client (exists once the engine has started)."""
        assert self._upstreams is not None, "routing engine not started"
        return self._upstreams

    @property
    def client(self) -> aiohttp.ClientSession:
        """Return the aiohttp session for probes (exists once the engine has started)."""
        return self.upstreams.session

    async def start(self) -> None:
        """Open the upstream client, load config and shared state, start the background loops."""
        self._upstreams = Upstreams(egress=self.egress)
        await self.catalog.reload()
        await self.board.reload(self.engine)
        self._spawn(self._listen_forever(), "gateway-listen")
        self._spawn(self._reload_forever(), "gateway-config-reload")
        self._spawn(self._refresh_state_forever(), "gateway-state-refresh")
        self._spawn(self.board.publish_forever(self.engine), "gateway-state-publish")
        self._spawn(self._check_forever(), "gateway-health-checks")

    async def stop(self) -> None:
        """Stop the background loops and close the upstream client."""
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        if self._upstreams is not None:
            await self._upstreams.close()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._background.append(asyncio.create_task(coro, name=name))

    def config_changed(self) -> None:
        """Ask for a catalog reload (coalesced with others arriving meanwhile)."""
        self._config_dirty.set()

    async def _reload_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._config_dirty.wait(), timeout=self.settings.config_refresh_s
                )
            self._config_dirty.clear()
            try:
                await self.catalog.reload()
                # A burst of changes (a backlog of events) costs one rebuild per gap, not one
                # each: what arrives during the gap is read by the next rebuild.
                await asyncio.sleep(self.settings.config_reload_gap_s)
            except Exception:
                log.exception("catalog reload failed; keeping the previous config")
                await asyncio.sleep(1.0)
                self._config_dirty.set()

    async def _refresh_state_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.state_refresh_s)
            try:
                await self.board.reload(self.engine)
            except Exception as exc:
                log.warning("shared state reload failed: %s", exc)

    async def _listen_forever(self) -> None:
        dsn = asyncpg_dsn(self.settings.database_url)

        def on_config(*_: Any) -> None:
            """Ask for a catalog reload."""
            self._config_dirty.set()

        def on_state(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            """Apply a state change another replica (or this one) announced."""
            try:
                self.board.apply_shared(decode_notification(payload))
            except (ValueError, KeyError) as exc:
                log.warning("ignoring a malformed state notification: %s", exc)

        while True:
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await asyncpg.connect(dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(CONFIG_CHANNEL, on_config)
                await conn.add_listener(STATE_CHANNEL, on_state)
                # Whatever changed while we were not listening is read now.
                await self.catalog.reload()
                await self.board.reload(self.engine)
                self.listening.set()
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lost the database listener (%s); reconnecting", exc)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(1.0)

    async def _check_forever(self) -> None:
        interval = self.settings.health_interval_s
        await asyncio.sleep(random.uniform(0, min(interval, 1.0)))
        while True:
            instances = [i for i in self.catalog.snapshot.instances.values() if i.enabled]
            await asyncio.gather(*(self._check(inst) for inst in instances))
            await asyncio.sleep(interval * random.uniform(0.9, 1.1))

    async def _check(self, inst: InstanceRoute) -> None:
        path = self.settings.health_path if inst.health_path is None else inst.health_path
        if not path:
            return
        try:
            # Resolved again before connecting: a name may point elsewhere since the last load.
            await self.egress.check_url(inst.base_url, kind=inst.kind)
            if inst.proxy_url:
                await self.egress.check_url(inst.proxy_url)
        except EgressRefused as exc:
            log.warning("health check of %s not sent: %s", inst.name, exc)
            return
        try:
            if not await claim_check(self.engine, inst.id, self.settings.health_interval_s):
                return
            result = await probe(
                self.client, inst, path=path, timeout_s=self.settings.health_timeout_s
            )
            await publish_check(
                self.engine,
                inst.id,
                ok=result.ok,
                reason=f"health check: {result.error}",
                threshold=self.settings.health_failures,
            )
        except Exception as exc:
            log.warning("health check of %s failed to run: %s", inst.name, exc)

    def instance_state_view(self, instance_id: uuid.UUID) -> dict[str, Any]:
        """Return this replica's view of an instance (for diagnostics and tests)."""
        st = self.board.state(instance_id)
        return {
            "cooldown_until": st.cooldown_until,
            "health_down": st.health_down,
            "in_flight": st.in_flight,
            "consecutive_failures": st.consecutive_failures,
            "cooldown_level": st.cooldown_level,
        }


def get_routing(request: Request) -> RoutingEngine:
    """Return the routing engine started by the app's lifespan."""
    routing: RoutingEngine = request.app.state.routing
    return routing


RoutingDep = Annotated[RoutingEngine, Depends(get_routing)]
