"""A device's place on the broker: its command queue, and its own login.

Commands wait for a device in its durable queue `device.<id>`, declared when it registers (and
again before a command, when the broker can be asked): the outbox relay publishes them as
mandatory, so without the queue they would be refused.

One RabbitMQ login per device is managed through the broker's management API.

A device's login may read its own command queue `device.<id>` and write only its reports and
heartbeats to `aimodels.events` and its answers to logs requests to `aimodels.replies` under
`logs.<its own id>.<request id>` (topic permissions on the routing key); it may configure
nothing, so it can neither declare, bind nor read any queue but its own: another device's
answers are out of its reach both ways. The broker checks the AMQP `user_id` of what it
publishes against the login, so a consumer learns the sender from the broker, not from the
message. Revoking deletes the login and closes its open connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from modelyard_common.contracts import (
    DEPLOYMENT_REPORTED,
    DEVICE_HEARTBEAT,
    DEVICES_EXCHANGE,
    EVENTS_EXCHANGE,
    LOGS_REPLY_PREFIX,
    REPLIES_EXCHANGE,
    device_routing_key,
)
from modelyard_common.device_identity import broker_password, broker_username
from modelyard_common.errors import ServiceUnavailableError
from modelyard_common.messaging import Binding, Broker
from modelyard_deployer.settings import DeployerSettings

log = logging.getLogger("modelyard.deployer.broker_logins")
queue_log = logging.getLogger("modelyard.deployer.devices")

NOTHING = "^$"
# The management API lists a connection a few seconds after it opens (stats interval); a
# connection opened just before a revoke is closed by one of these later sweeps.
SWEEP_DELAYS_S = (1.0, 2.0, 3.0, 5.0)


class BrokerLogins:
    """Creates, re-keys and deletes devices' broker logins on one vhost."""

    def __init__(self, management_url: str, vhost: str, *, timeout_s: float = 10.0) -> None:
        parts = urlsplit(management_url)
        auth = (parts.username or "guest", parts.password or "guest")
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc += f":{parts.port}"
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.vhost = vhost
        self.http = httpx.AsyncClient(base_url=f"{base}/api", auth=auth, timeout=timeout_s)
        self._sweeps: set[asyncio.Task[None]] = set()
        # Devices whose permissions this process has set since it started (`permit`).
        self.permitted: set[uuid.UUID] = set()

    async def close(self) -> None:
        for task in self._sweeps:
            task.cancel()
        await asyncio.gather(*self._sweeps, return_exceptions=True)
        await self.http.aclose()

    def sweep_later(self, device_id: uuid.UUID) -> None:
        """Close the device's connections again over the next seconds (in the background)."""

        async def sweep() -> None:
            for delay in SWEEP_DELAYS_S:
                await asyncio.sleep(delay)
                with contextlib.suppress(Exception):
                    await self.disconnect(device_id)

        task = asyncio.create_task(sweep(), name=f"sweep-{device_id}")
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    def _vhost(self) -> str:
        return quote(self.vhost, safe="")

    async def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = await self.http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            log.warning("broker management API unreachable: %s", exc)
            raise ServiceUnavailableError(
                "The message broker's management API is unreachable; try again shortly."
            ) from exc
        if response.status_code >= 400 and response.status_code != 404:
            log.warning("broker management API %s %s: %s", method, path, response.text[:300])
            raise ServiceUnavailableError("The message broker refused to manage device logins.")
        return response

    async def grant(self, device_id: uuid.UUID, token: str) -> None:
        """Create (or re-key) the device's login with its permissions; close old connections."""
        user = broker_username(device_id)
        quoted = quote(user, safe="")
        await self._call(
            "PUT", f"/users/{quoted}", json={"password": broker_password(token), "tags": ""}
        )
        await self.permit(device_id)
        # A rotated token ends the sessions opened with the old one.
        await self.disconnect(device_id)

    async def permit(self, device_id: uuid.UUID) -> None:
        """Set the device login's permissions (idempotent; a missing login stays missing)."""
        quoted = quote(broker_username(device_id), safe="")
        await self._call(
            "PUT",
            f"/permissions/{self._vhost()}/{quoted}",
            json={
                "configure": NOTHING,
                "write": f"^({re.escape(EVENTS_EXCHANGE)}|{re.escape(REPLIES_EXCHANGE)})$",
                "read": f"^{re.escape(device_routing_key(device_id))}$",
            },
        )
        own_messages = "|".join(re.escape(t) for t in (DEPLOYMENT_REPORTED, DEVICE_HEARTBEAT))
        await self._call(
            "PUT",
            f"/topic-permissions/{self._vhost()}/{quoted}",
            json={"exchange": EVENTS_EXCHANGE, "write": f"^({own_messages})$", "read": NOTHING},
        )
        own_replies = rf"^{re.escape(LOGS_REPLY_PREFIX)}\.{re.escape(str(device_id))}\.[0-9a-f-]+$"
        await self._call(
            "PUT",
            f"/topic-permissions/{self._vhost()}/{quoted}",
            json={"exchange": REPLIES_EXCHANGE, "write": own_replies, "read": NOTHING},
        )
        self.permitted.add(device_id)

    async def revoke(self, device_id: uuid.UUID) -> None:
        """Delete the device's login and close every connection it has open."""
        self.permitted.discard(device_id)
        await self._call("DELETE", f"/users/{quote(broker_username(device_id), safe='')}")
        await self.disconnect(device_id)

    async def disconnect(self, device_id: uuid.UUID) -> int:
        """Close the device's open broker connections; return how many were closed."""
        user = broker_username(device_id)
        response = await self._call("GET", "/connections", params={"columns": "name,user"})
        closed = 0
        for connection in response.json() if response.status_code == 200 else []:
            if connection.get("user") != user:
                continue
            await self._call(
                "DELETE",
                f"/connections/{quote(connection['name'], safe='')}",
                headers={"X-Reason": "device login revoked or re-keyed"},
            )
            closed += 1
        return closed

    async def exists(self, device_id: uuid.UUID) -> bool:
        """Return whether the device has a broker login."""
        response = await self._call("GET", f"/users/{quote(broker_username(device_id), safe='')}")
        return response.status_code == 200


async def ensure_device_queue(
    broker: Broker, settings: DeployerSettings, device_id: uuid.UUID
) -> None:
    """Declare the device's command queue, so commands wait there while it is offline.

    The outbox relay publishes commands as mandatory: without the queue they would be refused.
    """
    name = device_routing_key(device_id)
    if not broker.is_connected:
        raise ServiceUnavailableError("The message broker is unreachable; try again shortly.")
    try:
        await broker.declare_queue(
            name,
            [Binding(DEVICES_EXCHANGE, name)],
            delivery_limit=settings.consumer_delivery_limit,
        )
    except Exception as exc:
        queue_log.warning("declaring %s failed: %s", name, exc)
        raise ServiceUnavailableError("The device's command queue could not be declared.") from exc
