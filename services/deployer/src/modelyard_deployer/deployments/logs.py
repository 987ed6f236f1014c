"""A deployment's container logs, asked of its device over the device's own command channel.

Each request is one conversation on a channel of its own: the deployer checks that someone
consumes the device's command queue (else the device is offline: 503), declares a server-named
exclusive auto-delete queue bound to `logs.<device>.<request>` on `aimodels.replies`, and sends
a transient `LogsRequest` that expires with the answer timeout. The device answers in
`LogsChunk`s, published as mandatory. No answer in time is a 504. When the conversation ends
(the tail is complete, the client went away, a bound was hit) the channel closes, the queue
goes with it, and the device's next chunk comes back unroutable, which ends its stream: nothing
of the request outlives it, on the deployer or on the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aio_pika.exceptions
import anyio
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.contracts import (
    DEPLOYMENT_LOGS,
    DEPLOYMENT_LOGS_REQUESTED,
    DEVICES_EXCHANGE,
    REPLIES_EXCHANGE,
    LogsChunk,
    LogsEnd,
    LogsRequest,
    device_routing_key,
    logs_reply_key,
)
from modelyard_common.device_identity import broker_username
from modelyard_common.errors import ProblemError, ServiceUnavailableError
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.log_lines import clean_line
from modelyard_common.messaging import Broker
from modelyard_deployer.access.schemas import AccessLevel
from modelyard_deployer.db import Deployment
from modelyard_deployer.deployments.messages import SOURCE
from modelyard_deployer.deployments.visibility import visible_deployment
from modelyard_deployer.device_broker import BrokerLogins
from modelyard_deployer.settings import DeployerSettings

log = logging.getLogger("modelyard.deployer.logs")

# Chunks waiting in a conversation's queue; past that the device's publish is refused and its
# stream ends (a reader slower than the container writes).
REPLY_QUEUE_CHUNKS = 256
REPLY_PREFETCH = 16


class DeviceOfflineError(ProblemError):
    status, title, slug = 503, "Device offline", "device-offline"


class DeviceTimeoutError(ProblemError):
    status, title, slug = 504, "Device did not answer", "device-timeout"


class NoContainerError(ProblemError):
    status, title, slug = 409, "No container", "no-container"


class DeviceLogsFailedError(ProblemError):
    status, title, slug = 502, "Device could not read logs", "device-logs-failed"


@dataclass(frozen=True)
class LogsQuery:
    """What a caller asks for: the last `tail` lines, then new ones with `follow`."""

    tail: int
    follow: bool = False
    since: datetime | None = None


@dataclass
class DeviceLogs:
    """An open logs conversation with a device: its first chunk arrived; `close` ends it."""

    request: LogsRequest
    first: LogsChunk
    _channel_scope: contextlib.AsyncExitStack
    _inbox: asyncio.Queue[AbstractIncomingMessage]
    _sender: uuid.UUID
    _deadline: float
    _sent_bytes: int = 0
    truncated: bool = False
    ended: LogsEnd | None = None
    _closed: bool = field(default=False)

    async def close(self) -> None:
        """End the conversation: the channel closes and the reply queue goes with it.

        Shielded: it runs when the caller went away, inside a cancelled scope.
        """
        if not self._closed:
            self._closed = True
            with anyio.CancelScope(shield=True):
                await self._channel_scope.aclose()

    async def chunks(self, *, idle_s: float) -> AsyncIterator[LogsChunk]:
        """Yield the first chunk and the next ones until the device ends, falls silent or a
        bound is hit; raise `DeviceTimeoutError` when it falls silent for `idle_s`."""
        chunk: LogsChunk | None = self.first
        while chunk is not None:
            yield self._bounded(chunk)
            if chunk.end is not None or self.ended is not None:
                return
            chunk = await self._next(idle_s)

    def _bounded(self, chunk: LogsChunk) -> LogsChunk:
        """Return the chunk with clean lines, cut at the request's byte bound."""
        lines: list[str] = []
        for raw in chunk.lines:
            line, cut = clean_line(raw)
            size = len(line.encode()) + 1
            if self._sent_bytes + size > self.request.max_bytes:
                self.ended = LogsEnd.max_bytes
                self.truncated = True
                break
            self._sent_bytes += size
            self.truncated = self.truncated or cut
            lines.append(line)
        self.truncated = self.truncated or chunk.truncated
        return chunk.model_copy(update={"lines": lines})

    async def _next(self, idle_s: float) -> LogsChunk | None:
        """Return the device's next chunk; None when a followed stream reached its deadline.

        A tail that is not complete by then is a 504, never a silently shorter answer.
        """
        while True:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                self._past_deadline()
                return None
            try:
                message = await asyncio.wait_for(self._inbox.get(), min(idle_s, remaining))
            except TimeoutError:
                if self._deadline - time.monotonic() <= 0:
                    self._past_deadline()
                    return None
                raise DeviceTimeoutError(
                    f"The device stopped answering for {idle_s:.0f} s."
                ) from None
            chunk = _chunk_of(message, self.request, self._sender)
            with contextlib.suppress(Exception):
                await message.ack()
            if chunk is not None:
                return chunk

    def _past_deadline(self) -> None:
        if not self.request.follow:
            raise DeviceTimeoutError("The device did not finish its answer in time.")
        self.ended = LogsEnd.max_duration


def _chunk_of(
    message: AbstractIncomingMessage, request: LogsRequest, device_id: uuid.UUID
) -> LogsChunk | None:
    """Return the message as a chunk of this request from its device, None for anything else."""
    try:
        event = CloudEvent.model_validate_json(message.body)
        chunk = LogsChunk.model_validate(event.data)
    except (ValidationError, json.JSONDecodeError, ValueError):
        log.warning("dropping an unreadable logs answer for request %s", request.request_id)
        return None
    # The broker checks `user_id` against the login that published; the topic permissions
    # already keep other devices off this key, this says so once more.
    if message.user_id != broker_username(device_id):
        log.warning("dropping a logs answer sent by %r", message.user_id)
        return None
    if event.type != DEPLOYMENT_LOGS or chunk.request_id != request.request_id:
        return None
    return chunk


async def readable_deployment(
    session: AsyncSession, *, principal: Principal, deployment_id: uuid.UUID
) -> Deployment:
    """Return the deployment if the principal may read it, as `get_deployment` does (else 404).

    Nothing is sent to a device for a deployment the caller may not see.
    """
    return await visible_deployment(
        session, principal=principal, deployment_id=deployment_id, level=AccessLevel.viewer
    )


async def ask_device(
    *,
    broker: Broker,
    logins: BrokerLogins | None,
    settings: DeployerSettings,
    deployment: Deployment,
    query: LogsQuery,
) -> DeviceLogs:
    """Send the deployment's device a logs request; return the conversation once it answers.

    Raises 503 when the device is offline (nobody consumes its command queue) or the broker is
    unreachable, 504 when it does not answer within `logs_timeout_s`, 409 when the deployment
    has no container there, 502 when the device could not read its logs.
    """
    device_id = deployment.device_id
    if logins is not None:
        await _permit_replies(logins, device_id)
    scope = contextlib.AsyncExitStack()
    try:
        try:
            channel = await scope.enter_async_context(broker.own_channel())
        except ConnectionError as exc:
            raise ServiceUnavailableError(
                "The message broker is unreachable; try again shortly."
            ) from exc
        await _require_listening(channel, device_id)
        request = LogsRequest(
            request_id=uuid.uuid4(),
            deployment_id=deployment.id,
            device_id=device_id,
            tail=query.tail,
            follow=query.follow,
            since=query.since,
            max_bytes=settings.logs_follow_max_bytes if query.follow else settings.logs_max_bytes,
            max_duration_s=settings.logs_follow_max_s if query.follow else settings.logs_timeout_s,
            keepalive_s=settings.logs_keepalive_s,
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.logs_timeout_s),
        )
        inbox = await _listen(channel, device_id, request.request_id)
        await _send(channel, broker, settings, request)
        try:
            message = await asyncio.wait_for(inbox.get(), settings.logs_timeout_s)
        except TimeoutError:
            raise DeviceTimeoutError(
                f"The device did not answer within {settings.logs_timeout_s:.0f} s."
            ) from None
        first = _chunk_of(message, request, device_id)
        with contextlib.suppress(Exception):
            await message.ack()
        if first is None:
            raise DeviceLogsFailedError("The device's answer could not be read.")
        _refuse_on_end(first)
        # The device ends a follow stream by itself at `max_duration_s`; the deployer too, a
        # timeout later, should the device not.
        deadline = time.monotonic() + request.max_duration_s + settings.logs_timeout_s
        return DeviceLogs(
            request=request,
            first=first,
            _channel_scope=scope,
            _inbox=inbox,
            _sender=device_id,
            _deadline=deadline,
        )
    except BaseException:
        await scope.aclose()
        raise


async def _permit_replies(logins: BrokerLogins, device_id: uuid.UUID) -> None:
    """Give a device registered before logs existed the permission to answer (idempotent).

    Best effort: when the management API cannot be asked, a device that has the permission
    answers anyway, and one that has not does not answer (504).
    """
    if device_id in logins.permitted:
        return
    try:
        await logins.permit(device_id)
    except ServiceUnavailableError as exc:
        log.warning("could not set the broker permissions of device %s: %s", device_id, exc)


async def _require_listening(channel: AbstractRobustChannel, device_id: uuid.UUID) -> None:
    """Raise 503 unless the device's agent consumes its command queue right now."""
    offline = DeviceOfflineError(
        f"Device {device_id} is not connected to the message broker; its logs cannot be read now.",
        headers={"Retry-After": "10"},
    )
    try:
        queue = await channel.declare_queue(device_routing_key(device_id), passive=True)
    except aio_pika.exceptions.ChannelClosed as exc:  # the queue does not exist
        raise offline from exc
    result = queue.declaration_result
    if result is None or not result.consumer_count:
        raise offline


async def _listen(
    channel: AbstractRobustChannel, device_id: uuid.UUID, request_id: uuid.UUID
) -> asyncio.Queue[AbstractIncomingMessage]:
    """Declare the conversation's reply queue, bind it, consume it; return its inbox."""
    await channel.set_qos(prefetch_count=REPLY_PREFETCH)
    # Not robust: after a reconnect the conversation is over (the device's answers went to
    # the queue that died with the connection), nothing is to be restored.
    queue = await channel.declare_queue(
        None,
        exclusive=True,
        auto_delete=True,
        arguments={"x-max-length": REPLY_QUEUE_CHUNKS, "x-overflow": "reject-publish"},
        robust=False,
    )
    replies = await channel.get_exchange(REPLIES_EXCHANGE, ensure=False)
    await queue.bind(replies, routing_key=logs_reply_key(device_id, request_id), robust=False)
    inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def received(message: AbstractIncomingMessage) -> None:
        await inbox.put(message)

    await queue.consume(received, robust=False)
    return inbox


async def _send(
    channel: AbstractRobustChannel, broker: Broker, settings: DeployerSettings, request: LogsRequest
) -> None:
    """Publish the request to the device's command queue (transient, expiring unanswered)."""
    event = new_event(
        type=DEPLOYMENT_LOGS_REQUESTED,
        source=SOURCE,
        subject=str(request.deployment_id),
        data=request.model_dump(mode="json"),
    )
    devices = await channel.get_exchange(DEVICES_EXCHANGE, ensure=False)
    try:
        await devices.publish(
            broker.message(event, transient=True, expiration_s=settings.logs_timeout_s),
            routing_key=device_routing_key(request.device_id),
            mandatory=True,
        )
    except aio_pika.exceptions.DeliveryError as exc:
        raise DeviceOfflineError(
            f"Device {request.device_id} has no command queue; its logs cannot be read.",
            headers={"Retry-After": "10"},
        ) from exc


def _refuse_on_end(first: LogsChunk) -> None:
    """Raise the problem a first chunk that ends at once stands for, if any."""
    if first.end in (LogsEnd.no_container, LogsEnd.unknown_deployment):
        raise NoContainerError(
            "The deployment has no container on its device (not started yet, or removed)."
            + (f" {first.detail}" if first.detail else "")
        )
    if first.end is LogsEnd.busy:
        raise ServiceUnavailableError(
            "The device answers too many logs requests at once; try again shortly."
        )
    if first.end is LogsEnd.failed:
        raise DeviceLogsFailedError(first.detail or "The device could not read the logs.")
