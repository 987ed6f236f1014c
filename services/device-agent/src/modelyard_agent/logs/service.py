"""Answers to the deployer's logs requests: a container's lines, read from Docker, in chunks.

A request arrives on the command queue (`LogsRequest`); the answer goes to `aimodels.replies`
under `logs.<this device>.<request>` (the only key this device's login may publish answers
to), on a channel of its own, each chunk published as mandatory with a confirm. When the asker
stopped listening, its queue is gone and the chunk comes back unroutable: the stream ends.
It ends too at the request's duration and byte bounds (never above this agent's own), when the
container goes away, or when the agent stops. Docker's blocking log stream is read on a thread
of a small pool of its own (one per stream), so the engine's pool stays free for deployments.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections import deque
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import aio_pika.exceptions
from aio_pika.abc import AbstractExchange
from pydantic import ValidationError

from modelyard_agent.background import cancel_and_wait
from modelyard_agent.containers.errors import DockerError
from modelyard_agent.containers.runtime import DockerRuntime, LogBytes
from modelyard_agent.containers.specs import ManagedContainer
from modelyard_agent.routes import RouteTable
from modelyard_agent.settings import AgentSettings
from modelyard_agent.store import DesiredStateStore
from modelyard_common.contracts import (
    DEPLOYMENT_LOGS,
    REPLIES_EXCHANGE,
    LogsChunk,
    LogsEnd,
    LogsRequest,
    logs_reply_key,
)
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.log_lines import LineSplitter
from modelyard_common.messaging import Broker

log = logging.getLogger("modelyard.agent.logs")

SOURCE = "modelyard-agent"
CHUNK_BYTES = 64 * 1024
FLUSH_S = 0.2  # a followed line waits at most this long for company before it is sent
READ_AHEAD = 64  # batches of lines a reader thread may be ahead of what is sent
ANSWER_TTL_S = 60.0  # an answer nobody takes is dropped by the broker


class AskerGone(Exception):
    """The deployer's reply queue no longer takes answers (it stopped listening)."""


@dataclass(eq=False)
class LogStreams:
    """Answers logs requests, at most `logs_max_streams` at once, each on a task of its own."""

    settings: AgentSettings
    _: KW_ONLY
    broker: Broker
    docker: DockerRuntime
    store: DesiredStateStore
    routes: RouteTable
    _readers: concurrent.futures.ThreadPoolExecutor = field(init=False)
    _answers: set[asyncio.Task[None]] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.logs_max_streams, thread_name_prefix="logs"
        )

    @property
    def active(self) -> int:
        """Return how many requests are being answered now."""
        return len(self._answers)

    async def handle_request(self, event: CloudEvent) -> None:
        """Start answering a logs request; return at once (the request is acked).

        A request that does not parse, is for another device or has expired is dropped: the
        asker gave up or never existed, and a retry would not change that.
        """
        try:
            request = LogsRequest.model_validate(event.data)
        except ValidationError:
            log.warning("dropping unreadable logs request %s", event.id)
            return
        if request.device_id != self.settings.device_id:
            log.warning("dropping logs request %s meant for %s", event.id, request.device_id)
            return
        if request.expires_at <= datetime.now(UTC):
            log.info("dropping expired logs request %s", request.request_id)
            return
        if len(self._answers) >= self.settings.logs_max_streams:
            self._spawn(self._refuse(request, LogsEnd.busy))
        else:
            self._spawn(self._answer(request))

    async def stop(self) -> None:
        """End every stream (their readers too) and release the reader threads."""
        await cancel_and_wait(self._answers)
        self._readers.shutdown(wait=False, cancel_futures=True)

    def _spawn(self, answer: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(answer, name="logs-answer")
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _refuse(self, request: LogsRequest, end: LogsEnd, detail: str = "") -> None:
        with contextlib.suppress(Exception):
            async with self.broker.own_channel() as channel:
                answer = _Answer(request, await _replies(channel), self.broker)
                await answer.finish(end, detail)

    async def _answer(self, request: LogsRequest) -> None:
        try:
            async with self.broker.own_channel() as channel:
                answer = _Answer(request, await _replies(channel), self.broker)
                end, detail = await self._stream(request, answer)
                await answer.finish(end, detail)
        except AskerGone:
            log.info("logs request %s: the asker stopped listening", request.request_id)
        except (aio_pika.exceptions.AMQPError, ConnectionError) as exc:
            log.warning("logs request %s could not be answered: %s", request.request_id, exc)

    async def _stream(self, request: LogsRequest, answer: _Answer) -> tuple[LogsEnd, str]:
        """Send the request's lines; return why the answer ends."""
        record = self.store.get(request.deployment_id)
        if record is None or record.is_tombstone:
            return LogsEnd.unknown_deployment, "The device does not run this deployment."
        container = self._serving(
            request.deployment_id, await self.docker.list_managed(request.deployment_id)
        )
        if container is None:
            return LogsEnd.no_container, f"Its state on the device is {record.state.value}."
        try:
            stream = await self.docker.open_logs(
                container.id, tail=request.tail, follow=request.follow, since=request.since
            )
        except DockerError as exc:
            return LogsEnd.failed, str(exc)
        if stream is None:
            return LogsEnd.container_gone, ""
        max_bytes = min(request.max_bytes, self.settings.logs_max_bytes)
        reader = _Reader(stream, asyncio.get_running_loop())
        self._readers.submit(reader.pump)
        try:
            if request.follow:
                duration = min(request.max_duration_s, self.settings.logs_follow_max_s)
                return await _follow(reader, answer, max_bytes, duration, request.keepalive_s)
            return await _tail(reader, answer, max_bytes)
        finally:
            reader.stop()

    def _serving(
        self, deployment_id: UUID, containers: list[ManagedContainer]
    ) -> ManagedContainer | None:
        """Return the container serving the deployment, else its most recent one."""
        route = self.routes.for_deployment(deployment_id)
        chosen = next((c for c in containers if route and c.id == route.container_id), None)
        running = [c for c in containers if c.status == "running"]
        return (
            chosen or (running[0] if running else None) or (containers[0] if containers else None)
        )


async def _replies(channel: Any) -> AbstractExchange:
    exchange: AbstractExchange = await channel.get_exchange(REPLIES_EXCHANGE, ensure=False)
    return exchange


class _Answer:
    """The chunks of one answer, numbered, each confirmed by the broker before the next."""

    def __init__(self, request: LogsRequest, replies: AbstractExchange, broker: Broker) -> None:
        self.request = request
        self.replies = replies
        self.broker = broker
        self.key = logs_reply_key(request.device_id, request.request_id)
        self.seq = 0
        self.truncated = False

    async def send(self, lines: list[str], *, end: LogsEnd | None = None, detail: str = "") -> None:
        """Publish one chunk; raise `AskerGone` when no queue takes it."""
        chunk = LogsChunk(
            request_id=self.request.request_id,
            deployment_id=self.request.deployment_id,
            seq=self.seq,
            lines=lines,
            truncated=self.truncated,
            end=end,
            detail=detail,
        )
        event = new_event(
            type=DEPLOYMENT_LOGS,
            source=SOURCE,
            subject=str(self.request.deployment_id),
            data=chunk.model_dump(mode="json"),
        )
        message = self.broker.message(event, transient=True, expiration_s=ANSWER_TTL_S)
        try:
            await self.replies.publish(message, routing_key=self.key, mandatory=True)
        except aio_pika.exceptions.DeliveryError as exc:  # returned unroutable, or refused
            raise AskerGone from exc
        self.seq += 1

    async def finish(self, end: LogsEnd, detail: str = "") -> None:
        """Send the last chunk (no lines) saying why the answer ends."""
        await self.send([], end=end, detail=detail)


class _Reader:
    """Reads a Docker log stream on a thread and hands its lines to the event loop in batches.

    At most `READ_AHEAD` batches wait; the thread blocks past that (the answer is slower than
    the container), and gives up as soon as `stop` is called.
    """

    END = None

    def __init__(self, stream: LogBytes, loop: asyncio.AbstractEventLoop) -> None:
        self.stream = stream
        self.loop = loop
        self.batches: asyncio.Queue[list[str] | BaseException | None] = asyncio.Queue(READ_AHEAD)
        self.splitter = LineSplitter()
        self._stopped = threading.Event()

    def pump(self) -> None:
        """Read the stream to its end (blocking, on a reader thread)."""
        try:
            for data in self.stream:
                if self._stopped.is_set():
                    return
                lines = self.splitter.feed(data)
                if lines and not self._hand_over(lines):
                    return
            last = self.splitter.finish()
            if last and not self._hand_over(last):
                return
            self._hand_over(self.END)
        except BaseException as exc:
            if not self._stopped.is_set():
                self._hand_over(exc)

    def _hand_over(self, item: list[str] | BaseException | None) -> bool:
        future = asyncio.run_coroutine_threadsafe(self.batches.put(item), self.loop)
        while not self._stopped.is_set():
            try:
                future.result(timeout=0.5)
                return True
            except concurrent.futures.TimeoutError:
                continue
            except (concurrent.futures.CancelledError, RuntimeError):
                return False
        future.cancel()
        return False

    def stop(self) -> None:
        """End the read: a thread waiting on Docker wakes up and leaves."""
        self._stopped.set()
        with contextlib.suppress(Exception):
            self.stream.close()

    async def next(self, within_s: float) -> list[str] | BaseException | None:
        """Return the next batch, `END` (None) at the end, or [] when none came in time."""
        try:
            return await asyncio.wait_for(self.batches.get(), within_s)
        except TimeoutError:
            return []


async def _tail(reader: _Reader, answer: _Answer, max_bytes: int) -> tuple[LogsEnd, str]:
    """Send the last lines that fit in `max_bytes` (oldest dropped first), then end."""
    kept: deque[str] = deque()
    size = 0
    while True:
        batch = await reader.batches.get()
        if batch is None:
            break
        if isinstance(batch, BaseException):
            return LogsEnd.failed, f"Docker stopped the logs: {batch}"
        for line in batch:
            kept.append(line)
            size += len(line.encode()) + 1
            while size > max_bytes and kept:
                size -= len(kept.popleft().encode()) + 1
                answer.truncated = True
    answer.truncated = answer.truncated or reader.splitter.truncated
    chunk: list[str] = []
    chunk_size = 0
    for line in kept:
        chunk.append(line)
        chunk_size += len(line.encode()) + 1
        if chunk_size >= CHUNK_BYTES:
            await answer.send(chunk)
            chunk, chunk_size = [], 0
    if chunk:
        await answer.send(chunk)
    return LogsEnd.complete, ""


async def _follow(
    reader: _Reader, answer: _Answer, max_bytes: int, duration_s: float, keepalive_s: float
) -> tuple[LogsEnd, str]:
    """Send lines as the container writes them, until a bound or the container's end.

    A line waits at most `FLUSH_S` for company; a quiet stream sends an empty chunk every
    `keepalive_s`, which also finds out when the asker is gone.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    pending: list[str] = []
    pending_size = sent = 0
    pending_since = 0.0
    # The first chunk goes at once (even empty): the asker waits for it to answer its caller.
    await answer.send([])
    last_sent = loop.time()
    while True:
        now = loop.time()
        if now >= deadline:
            await _flush(answer, pending)
            return LogsEnd.max_duration, ""
        due = pending_since + FLUSH_S if pending else last_sent + keepalive_s
        batch = await reader.next(max(min(due, deadline) - now, 0.001))
        if batch is None:
            await _flush(answer, pending)
            return LogsEnd.container_gone, "The container's output ended."
        if isinstance(batch, BaseException):
            await _flush(answer, pending)
            return LogsEnd.failed, f"Docker stopped the logs: {batch}"
        if batch:
            if not pending:
                pending_since = loop.time()
            for line in batch:
                size = len(line.encode()) + 1
                if sent + pending_size + size > max_bytes:
                    answer.truncated = True
                    await _flush(answer, pending)
                    return LogsEnd.max_bytes, ""
                pending.append(line)
                pending_size += size
            answer.truncated = answer.truncated or reader.splitter.truncated
        now = loop.time()
        if pending and (pending_size >= CHUNK_BYTES or now - pending_since >= FLUSH_S):
            await answer.send(pending)
            sent += pending_size
            pending, pending_size = [], 0
            last_sent = now
        elif not pending and now - last_sent >= keepalive_s:
            await answer.send([])
            last_sent = now


async def _flush(answer: _Answer, pending: list[str]) -> None:
    if pending:
        await answer.send(pending)
