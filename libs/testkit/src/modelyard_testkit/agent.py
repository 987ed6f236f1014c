"""Test and benchmark helpers: a stand-in artifact server, a command sender, a report reader.

They talk to the real broker and serve real HTTP, so tests exercise the agent end to end while
the deployer is not in the picture: the artifact server checks the device token and answers
Range requests like the deployer's `/v1/versions/{id}/artifact`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import threading
import time
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import docker
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from modelyard_agent.app import Agent
from modelyard_agent.containers.labels import LABEL_DEVICE
from modelyard_common.contracts import (
    DEPLOYMENT_REPORTED,
    DEVICE_COMMAND,
    DEVICE_HEARTBEAT,
    DEVICES_EXCHANGE,
    EVENTS_EXCHANGE,
    CommandAction,
    DeploymentReport,
    DeploymentState,
    DesiredState,
    DeviceCommand,
    VersionSpec,
    device_routing_key,
)
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.manifest import Manifest

#: The `make_agent` fixture: `await make_agent(device_id=..., data_dir=..., **settings)`.
AgentFactory = Callable[..., Awaitable[Agent]]


class TcpProxy:
    """A loopback TCP proxy that can cut every connection and refuse new ones, then come back.

    Stands in for a broker restart or a network outage between the agent and RabbitMQ without
    touching the broker other tests use.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (on the same port as before, if restarted)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, upstream_writer})

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()
                self._writers.discard(sink)

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


def zip_project(directory: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """Return the bytes of a zip holding every file under `directory` plus `extra` files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory).as_posix())
        for name, payload in (extra or {}).items():
            archive.writestr(name, payload)
    return buffer.getvalue()


@dataclass
class ArtifactServer:
    """A threaded HTTP server publishing zips at `/artifacts/<key>` for one bearer token.

    Knobs per key, for tests of interrupted and resumed downloads:
    - `throttle`: (bytes per chunk, seconds between chunks), so a download can be interrupted;
    - `cut_after`: the next answer drops its connection after this many body bytes (once);
    - `tampered`: bytes served instead of the published ones to Range requests (resumes);
    - `range_mode`: `"ignore"` answers a Range request with 200 and the whole body,
      `"from_zero"` with a 206 whose Content-Range starts at 0 (both: a server not honouring it).
    `requests` records (key, Range header, status) of every request and `served` the body bytes
    sent per key.
    """

    token: str
    artifacts: dict[str, bytes] = field(default_factory=dict)
    throttle: dict[str, tuple[int, float]] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    tampered: dict[str, bytes] = field(default_factory=dict)
    range_mode: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start serving on a free loopback port."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_HEAD(self) -> None:
                key = self.path.rsplit("/", 1)[-1]
                data = owner.artifacts.get(key)
                authorized = self.headers.get("Authorization") == f"Bearer {owner.token}"
                status = 404 if data is None else 200 if authorized else 401
                owner.requests.append((key, None, status))
                self.send_response(status)
                self.send_header("Content-Length", str(len(data or b"")))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

            def do_GET(self) -> None:
                key = self.path.rsplit("/", 1)[-1]
                range_header = self.headers.get("Range")
                if self.headers.get("Authorization") != f"Bearer {owner.token}":
                    self._reply(key, range_header, 401, b'{"title":"Unauthorized"}')
                    return
                data = owner.artifacts.get(key)
                if data is None:
                    self._reply(key, range_header, 404, b'{"title":"Not Found"}')
                    return
                start = 0
                status = 200
                mode = owner.range_mode.get(key)
                if range_header and range_header.startswith("bytes=") and mode != "ignore":
                    data = owner.tampered.get(key, data)
                    start = int(range_header[6:].split("-", 1)[0] or 0)
                    if start >= len(data):
                        self._reply(key, range_header, 416, b"")
                        return
                    status = 206
                    if mode == "from_zero":
                        start = 0
                owner.requests.append((key, range_header, status))
                body = data[start:]
                with owner._lock:
                    cut = owner.cut_after.pop(key, None)
                self.send_response(status)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if cut is not None:
                    body = body[:cut]
                    self.close_connection = True
                chunk, delay = owner.throttle.get(key, (len(body) or 1, 0.0))
                try:
                    for offset in range(0, len(body), chunk):
                        piece = body[offset : offset + chunk]
                        self.wfile.write(piece)
                        self.wfile.flush()
                        with owner._lock:
                            owner.served[key] = owner.served.get(key, 0) + len(piece)
                        if delay:
                            time.sleep(delay)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def _reply(self, key: str, range_header: str | None, status: int, body: bytes) -> None:
                owner.requests.append((key, range_header, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/problem+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def origin(self) -> str:
        """Return the server's origin: what an agent under test has as its deployer URL."""
        if self._server is None:
            raise RuntimeError("start() the server first")
        return f"http://127.0.0.1:{self._server.server_port}"

    def publish(self, data: bytes) -> tuple[str, str]:
        """Serve `data` under a new key; return (url, key)."""
        if self._server is None:
            raise RuntimeError("start() the server first")
        key = uuid4().hex
        self.artifacts[key] = data
        return f"http://127.0.0.1:{self._server.server_port}/artifacts/{key}", key


def project_manifest(**values: Any) -> Manifest:
    """Return a manifest for the local base image with small limits; `values` override."""
    defaults: dict[str, Any] = {
        "image": "modelyard/python-base:bookworm",
        "language": "python3",
        "port": 8080,
        "max_ram_mb": 128,
        "cores": 0.5,
        "health_path": "/healthz",
        "protocol": "handlers",
    }
    if values.get("dockerfile"):
        defaults.pop("image")
    defaults.update(values)
    return Manifest.model_validate(defaults)


def version_spec(
    server: ArtifactServer,
    data: bytes,
    manifest: Manifest,
    *,
    model_name: str,
    model_id: UUID,
    number: int,
) -> VersionSpec:
    """Publish a zip on the artifact server and return the version spec pointing at it."""
    url, _key = server.publish(data)
    return VersionSpec(
        id=uuid4(),
        model_id=model_id,
        model_name=model_name,
        number=number,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        artifact_url=url,
        manifest=manifest,
    )


async def delete_device_queues(amqp_url: str, devices: set[UUID]) -> None:
    """Delete the test devices' command queues and their dead-letter queues."""
    connection = await aio_pika.connect(amqp_url)
    try:
        for device in devices:
            for name in (f"device.{device}", f"device.{device}.dead"):
                channel = await connection.channel()
                try:
                    await channel.queue_delete(name)
                except aio_pika.exceptions.ChannelClosed:
                    pass  # the queue was never declared
                finally:
                    if not channel.is_closed:
                        await channel.close()
    finally:
        await connection.close()


def remove_device_leftovers(client: docker.DockerClient, devices: set[UUID]) -> None:
    """Remove every container, image and network labelled with one of the test devices."""
    for device in devices:
        label = f"{LABEL_DEVICE}={device}"
        for container in client.containers.list(
            all=True, ignore_removed=True, filters={"label": label}
        ):
            container.remove(force=True)
        for image in client.images.list(filters={"label": label}):
            client.images.remove(str(image.id), force=True)
        for network in client.networks.list(filters={"label": label}):
            network.remove()


class BrokerProbe:
    """Sends device commands and collects every agent report and heartbeat from the broker."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.reports: list[DeploymentReport] = []
        self.report_events: list[CloudEvent] = []
        self.heartbeats: list[dict[str, Any]] = []
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        """Connect, and bind a private queue to the agent's event types."""
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        events = await self._channel.declare_exchange(
            EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await self._channel.declare_exchange(
            DEVICES_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        # Durable, so the probe also hears what is published right after a broker restart.
        self._queue_name = f"test-probe-{uuid4().hex[:12]}"
        queue = await self._channel.declare_queue(
            self._queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(events, routing_key=DEPLOYMENT_REPORTED)
        await queue.bind(events, routing_key=DEVICE_HEARTBEAT)
        self._queue = queue
        self._consumer_tag = await queue.consume(self._on_message, no_ack=True)

    async def close(self) -> None:
        """Stop consuming, delete the probe's queue and disconnect.

        In that order, on the channel that declared the queue: a queue deleted from under its
        consumer (another channel) has the broker cancel the consumer, and the robust
        connection then starts restoring it while it is being closed; a reconnection cut short
        by the close left an AMQP connection's tasks running.
        """
        if self._connection is None:
            return
        with contextlib.suppress(Exception):
            if self._queue is not None and self._consumer_tag is not None:
                await self._queue.cancel(self._consumer_tag)
            if self._channel is not None:
                await self._channel.queue_delete(self._queue_name)
        await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        event = CloudEvent.model_validate_json(message.body)
        if event.type == DEPLOYMENT_REPORTED:
            self.report_events.append(event)
            self.reports.append(DeploymentReport.model_validate(event.data))
        elif event.type == DEVICE_HEARTBEAT:
            self.heartbeats.append(event.data)
        self._changed.set()

    async def send(
        self,
        *,
        device_id: UUID,
        deployment_id: UUID,
        generation: int,
        version: VersionSpec,
        desired_state: DesiredState = DesiredState.running,
        action: CommandAction = CommandAction.deploy,
        previous_version: VersionSpec | None = None,
    ) -> DeviceCommand:
        """Publish a device command as the deployer would; return it."""
        if self._channel is None:
            raise RuntimeError("start() the probe first")
        command = DeviceCommand(
            deployment_id=deployment_id,
            device_id=device_id,
            generation=generation,
            action=action,
            desired_state=desired_state,
            version=version,
            previous_version=previous_version,
        )
        event = new_event(
            type=DEVICE_COMMAND,
            source="/tests/deployer",
            subject=str(deployment_id),
            data=command.model_dump(mode="json"),
        )
        exchange = await self._channel.get_exchange(DEVICES_EXCHANGE)
        await exchange.publish(
            aio_pika.Message(
                body=event.to_bytes(),
                content_type="application/cloudevents+json",
                message_id=event.id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=device_routing_key(device_id),
        )
        return command

    def states(self, deployment_id: UUID) -> list[DeploymentState]:
        """Return the states reported for a deployment, in sequence order."""
        mine = sorted(
            (r for r in self.reports if r.deployment_id == deployment_id), key=lambda r: r.sequence
        )
        return [r.state for r in mine]

    def delivered_sequences(self, deployment_id: UUID) -> list[int]:
        """Return a deployment's report sequences in order of first arrival, one per event id.

        Delivery is at least once: a report whose confirm was lost is sent again under the same
        event id. Raises AssertionError if one event id ever carried two different sequences.
        """
        first_seen: dict[str, int] = {}
        for event, report in zip(self.report_events, self.reports, strict=True):
            if report.deployment_id != deployment_id:
                continue
            if first_seen.setdefault(event.id, report.sequence) != report.sequence:
                raise AssertionError(f"event {event.id} carried two sequences")
        return list(first_seen.values())

    def last(self, deployment_id: UUID) -> DeploymentReport | None:
        """Return the highest-sequence report of a deployment."""
        mine = [r for r in self.reports if r.deployment_id == deployment_id]
        return max(mine, key=lambda r: r.sequence) if mine else None

    async def wait_for(
        self, predicate: Callable[[], bool], *, timeout_s: float = 30.0, what: str = "condition"
    ) -> None:
        """Wait until `predicate()` holds, re-checking on every message and every 0.2 s."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{what} not reached within {timeout_s}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.2)):
                    await self._changed.wait()

    async def wait_state(
        self, deployment_id: UUID, state: DeploymentState, *, timeout_s: float = 30.0
    ) -> DeploymentReport:
        """Return the latest report once a deployment's latest state is `state`."""

        def reached() -> bool:
            last = self.last(deployment_id)
            return last is not None and last.state is state

        try:
            await self.wait_for(reached, timeout_s=timeout_s, what=f"state {state.value}")
        except TimeoutError as exc:
            raise TimeoutError(
                f"{exc}; reported so far: {[s.value for s in self.states(deployment_id)]}; "
                f"last message: {getattr(self.last(deployment_id), 'message', None)!r}"
            ) from None
        report = self.last(deployment_id)
        assert report is not None
        return report
