"""Test stand-ins and builders: registry, device agent, event tap, project zips."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
from fastapi import FastAPI
from modelyard_testkit.testing import TEST_AMQP_URL, TEST_JWT_SECRET
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from modelyard_common.auth import decode_token, issue_token
from modelyard_common.contracts import (
    DEPLOYMENT_LOGS,
    DEPLOYMENT_LOGS_REQUESTED,
    DEPLOYMENT_REPORTED,
    DEVICE_HEARTBEAT,
    EVENTS_EXCHANGE,
    REPLIES_EXCHANGE,
    DeviceCommand,
    LogsChunk,
    LogsEnd,
    LogsRequest,
    logs_reply_key,
)
from modelyard_common.device_identity import broker_username, device_amqp_url
from modelyard_common.errors import ForbiddenError, UnauthorizedError
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.messaging import Binding, Broker, Consumer
from modelyard_deployer.artifacts import ArtifactStore, S3ArtifactStore

JWT_SECRET = TEST_JWT_SECRET
AMQP_URL = TEST_AMQP_URL

MAIN_PY = b"def predict(payload):\n    return {'echo': payload}\n"
DEFAULT_MANIFEST: dict[str, Any] = {
    "image": "modelyard/python-base:bookworm",
    "language": "python3",
    "main": "main.py",
    "handlers": [{"name": "predict", "description": "Echo the payload"}],
    "input_type": "json",
    "port": 8080,
    "max_ram_mb": 128,
    "cores": 0.5,
    "protocol": "handlers",
}
OPENAI_MANIFEST: dict[str, Any] = {**DEFAULT_MANIFEST, "protocol": "openai", "handlers": []}


def bearer(sub: str, roles: list[str], workspace: str) -> dict[str, str]:
    """Return an Authorization header for a user."""
    token = issue_token(secret=JWT_SECRET, sub=sub, roles=roles, workspace=workspace)
    return {"Authorization": f"Bearer {token}"}


def project_zip(
    files: dict[str, bytes] | None = None,
    *,
    infos: list[tuple[zipfile.ZipInfo, bytes]] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """Return a zip holding `files` (default: a main.py) and raw `infos` entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, payload in (files if files is not None else {"main.py": MAIN_PY}).items():
            archive.writestr(name, payload)
        for info, payload in infos or []:
            archive.writestr(info, payload)
    return buffer.getvalue()


# --- registry stand-in -------------------------------------------------------------------------


@dataclass
class RegistryStandIn:
    """Models the registry knows, answered over HTTP like the real one (JWT-protected)."""

    url: str = ""
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    hits: int = 0


def registry_app(stand_in: RegistryStandIn) -> Starlette:
    async def get_model(request: Request) -> JSONResponse:
        stand_in.hits += 1
        header = request.headers.get("authorization", "")
        try:
            # As the registry does: a token granting several workspaces names one in a header.
            principal = decode_token(
                header.removeprefix("Bearer "),
                secret=JWT_SECRET,
                requested_workspace=request.headers.get("x-modelyard-workspace"),
            )
        except UnauthorizedError:
            return JSONResponse({"title": "Unauthorized", "status": 401}, status_code=401)
        except ForbiddenError:
            return JSONResponse({"title": "Forbidden", "status": 403}, status_code=403)
        model = stand_in.models.get(request.path_params["model_id"])
        if model is None or model["workspace"] != principal.workspace:
            return JSONResponse({"title": "Not Found", "status": 404}, status_code=404)
        return JSONResponse(model)

    return Starlette(routes=[Route("/v1/models/{model_id}", get_model)])


# --- broker helpers ----------------------------------------------------------------------------


async def publish_event(broker: Broker, event: CloudEvent) -> None:
    """Publish an event on `aimodels.events` as another service would."""
    await broker.publish(event, exchange=EVENTS_EXCHANGE, routing_key=event.type)


async def eventually(
    check: Callable[[], Awaitable[Any]], *, within: float = 10.0, interval: float = 0.05
) -> Any:
    """Return the first truthy result of `check`, polling; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(interval)


class EventTap:
    """Collects the deployer's `deployer.deployment.*` events from a private queue."""

    def __init__(self) -> None:
        self.name = f"test-tap-{uuid.uuid4().hex[:10]}"
        self.events: list[CloudEvent] = []
        self._broker = Broker(AMQP_URL)
        self._consumer: Consumer | None = None

    async def start(self) -> EventTap:
        await self._broker.connect()

        async def collect(event: CloudEvent) -> None:
            self.events.append(event)

        self._consumer = await self._broker.consume(
            self.name, [Binding(EVENTS_EXCHANGE, "deployer.deployment.#")], collect
        )
        return self

    def of(self, deployment_id: uuid.UUID | str, event_type: str) -> list[CloudEvent]:
        return [
            e
            for e in self.events
            if e.type == event_type and e.data.get("deployment_id") == str(deployment_id)
        ]

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        with contextlib.suppress(Exception):
            await self._broker.channel.queue_delete(self.name)
            await self._broker.channel.queue_delete(f"{self.name}.dead")
        await self._broker.close()


# --- device stand-in ---------------------------------------------------------------------------


class DeviceStandIn:
    """Speaks the agent's protocol over the real broker: takes commands, reports states.

    Like the real agent it applies a command only if its generation is higher than the one it
    holds for the deployment; it keeps every received command so tests can inspect them.
    """

    created: ClassVar[list[uuid.UUID]] = []

    def __init__(
        self, *, device_id: uuid.UUID, token: str, client: httpx.AsyncClient, broker: Broker
    ) -> None:
        self.id = device_id
        self.token = token
        self.client = client
        self.events = broker
        self.received: list[DeviceCommand] = []
        self.applied: dict[uuid.UUID, DeviceCommand] = {}
        self.sequences: dict[uuid.UUID, int] = {}
        self._arrivals: asyncio.Queue[DeviceCommand] = asyncio.Queue()
        self._broker: Broker | None = None
        # What its "container" wrote, and the logs requests it answered with it.
        self.log_lines = ["stand-in line 1", "stand-in line 2"]
        self.logs_requests: list[LogsRequest] = []
        DeviceStandIn.created.append(device_id)

    @property
    def queue(self) -> str:
        return f"device.{self.id}"

    async def login(self) -> Broker:
        """Return the device's own broker connection (its login, declaring nothing)."""
        if self._broker is None:
            broker = Broker(
                device_amqp_url(AMQP_URL, self.id, self.token),
                prefetch=10,
                user_id=broker_username(self.id),
                declare=False,
            )
            await broker.connect()
            self._broker = broker
        return self._broker

    async def connect(self) -> DeviceStandIn:
        """Start consuming the device's own queue (commands sent meanwhile are waiting)."""
        await self.login()
        assert self._broker is not None

        async def on_command(event: CloudEvent) -> None:
            if event.type == DEPLOYMENT_LOGS_REQUESTED:
                await self._answer_logs(LogsRequest.model_validate(event.data))
                return
            command = DeviceCommand.model_validate(event.data)
            self.received.append(command)
            held = self.applied.get(command.deployment_id)
            if held is None or command.generation > held.generation:
                self.applied[command.deployment_id] = command
            await self._arrivals.put(command)

        await self._broker.consume(
            self.queue, [Binding("aimodels.devices", self.queue)], on_command
        )
        return self

    async def _answer_logs(self, request: LogsRequest) -> None:
        """Answer a logs request at once: the last of `log_lines`, in one chunk that ends it."""
        assert self._broker is not None
        self.logs_requests.append(request)
        chunk = LogsChunk(
            request_id=request.request_id,
            deployment_id=request.deployment_id,
            seq=0,
            lines=self.log_lines[-request.tail :] if request.tail else [],
            end=LogsEnd.max_duration if request.follow else LogsEnd.complete,
        )
        event = new_event(
            type=DEPLOYMENT_LOGS,
            source=f"modelyard-agent/{self.id}",
            data=chunk.model_dump(mode="json"),
        )
        await self._broker.publish(
            event,
            exchange=REPLIES_EXCHANGE,
            routing_key=logs_reply_key(self.id, request.request_id),
        )

    async def next_command(self, within: float = 10.0) -> DeviceCommand:
        """Return the next command the device receives; TimeoutError after `within` seconds."""
        return await asyncio.wait_for(self._arrivals.get(), within)

    async def report(
        self,
        deployment_id: uuid.UUID | str,
        state: str,
        *,
        generation: int | None = None,
        sequence: int | None = None,
        version_id: uuid.UUID | str | None = None,
        message: str = "",
        base_url: str | None = None,
        host_port: int | None = None,
        event_id: str | None = None,
        epoch: str | None = None,
    ) -> CloudEvent:
        """Publish one `agent.deployment.reported` event; sequence grows by itself."""
        deployment = uuid.UUID(str(deployment_id))
        if sequence is None:
            sequence = self.sequences.get(deployment, 0) + 1
        self.sequences[deployment] = max(self.sequences.get(deployment, 0), sequence)
        held = self.applied.get(deployment)
        event = new_event(
            type=DEPLOYMENT_REPORTED,
            source=f"modelyard-agent/{self.id}",
            subject=str(deployment),
            data={
                "deployment_id": str(deployment),
                "device_id": str(self.id),
                "generation": generation
                if generation is not None
                else (held.generation if held else 1),
                "sequence": sequence,
                "state": state,
                "version_id": str(version_id)
                if version_id
                else (str(held.version.id) if held else None),
                "message": message,
                "log_tail": [],
                "host_port": host_port,
                "base_url": base_url,
                "reported_at": datetime.now(UTC).isoformat(),
                "agent_epoch": epoch,
            },
        )
        if event_id is not None:
            event.id = event_id
        await publish_event(await self.login(), event)
        return event

    async def heartbeat(
        self,
        *,
        agent_version: str = "0.1.0",
        sent_at: datetime | None = None,
        epoch: str | None = None,
        deployments: list[dict[str, Any]] | None = None,
        interval_s: Any = None,
        **capabilities: Any,
    ) -> None:
        declared = {} if interval_s is None else {"interval_s": interval_s}
        await publish_event(
            await self.login(),
            new_event(
                type=DEVICE_HEARTBEAT,
                source=f"modelyard-agent/{self.id}",
                data={
                    "device_id": str(self.id),
                    "agent_version": agent_version,
                    "capabilities": capabilities,
                    "advertise_host": "10.0.0.7",
                    "sent_at": (sent_at or datetime.now(UTC)).isoformat(),
                    "agent_epoch": epoch,
                    "deployments": deployments or [],
                    **declared,
                },
            ),
        )

    async def download(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.get(
            url, headers={"Authorization": f"Bearer {self.token}", **(headers or {})}
        )

    async def close(self) -> None:
        if self._broker is not None:
            await self._broker.close()
            self._broker = None


# --- a tenant: one workspace with its admin ----------------------------------------------------


@dataclass
class Tenant:
    client: httpx.AsyncClient
    registry: RegistryStandIn
    broker: Broker
    workspace: str
    model_id: uuid.UUID = field(default_factory=uuid.uuid4)
    devices: list[DeviceStandIn] = field(default_factory=list)

    def headers(self, sub: str = "root", roles: tuple[str, ...] = ("admin",)) -> dict[str, str]:
        return bearer(sub, list(roles), self.workspace)

    @property
    def admin(self) -> dict[str, str]:
        return self.headers()

    def add_model(self, name: str, *, archived: bool = False) -> uuid.UUID:
        model_id = uuid.uuid4()
        self.registry.models[str(model_id)] = {
            "id": str(model_id),
            "name": name,
            "archived": archived,
            "workspace": self.workspace,
            "learning_type": "supervised",
        }
        return model_id

    async def upload(
        self,
        archive: bytes | None = None,
        *,
        manifest: dict[str, Any] | str | None = DEFAULT_MANIFEST,
        model_id: uuid.UUID | None = None,
        headers: dict[str, str] | None = None,
        **fields: str,
    ) -> httpx.Response:
        data = dict(fields)
        if manifest is not None:
            data["manifest"] = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return await self.client.post(
            f"/v1/models/{model_id or self.model_id}/versions",
            files={"file": ("project.zip", archive if archive is not None else project_zip())},
            data=data,
            headers=headers or self.admin,
        )

    async def new_version(self, **kwargs: Any) -> dict[str, Any]:
        response = await self.upload(**kwargs)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def register_device(
        self,
        name: str = "edge",
        labels: dict[str, str] | None = None,
        *,
        connect: bool = True,
        advertise_host: str = "10.0.0.7",
    ) -> DeviceStandIn:
        response = await self.client.post(
            "/v1/devices",
            json={"name": name, "labels": labels or {}, "advertise_host": advertise_host},
            headers=self.admin,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        device = DeviceStandIn(
            device_id=uuid.UUID(body["id"]),
            token=body["token"],
            client=self.client,
            broker=self.broker,
        )
        self.devices.append(device)
        if connect:
            await device.connect()
        return device

    async def deploy(self, version_id: str, devices: list[DeviceStandIn]) -> list[dict[str, Any]]:
        response = await self.client.post(
            "/v1/deployments",
            json={"version_id": version_id, "device_ids": [str(d.id) for d in devices]},
            headers=self.admin,
        )
        assert response.status_code == 201, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def deployment(self, deployment_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/deployments/{deployment_id}", headers=self.admin)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def history(self, deployment_id: str, **params: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/v1/deployments/{deployment_id}/history", params=params, headers=self.admin
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def wait_state(
        self, deployment_id: str, state: str, within: float = 10.0
    ) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            current = await self.deployment(deployment_id)
            return current if current["state"] == state else None

        result: dict[str, Any] = await eventually(reached, within=within)
        return result

    async def close(self) -> None:
        for device in self.devices:
            await device.close()


@dataclass
class ArtifactBackend:
    """The artifact store a test runs against, and a way to see everything it holds."""

    store: ArtifactStore
    spool_dir: Path

    @property
    def name(self) -> str:
        return "s3" if isinstance(self.store, S3ArtifactStore) else "local"

    async def everything(self) -> set[str]:
        """Return all the store holds: objects, staging files, unfinished multipart uploads."""
        found = {f"file:{p}" for p in self.spool_dir.rglob("*") if p.is_file()}
        if isinstance(self.store, S3ArtifactStore):
            client = await self.store.client()
            listed = await client.list_objects_v2(
                Bucket=self.store.bucket, Prefix=self.store.prefix
            )
            found |= {f"object:{o['Key']}" for o in listed.get("Contents", [])}
            found |= {f"upload:{u['Key']}" for u in await self.store.pending_uploads()}
        return found

    async def content(self, key: str) -> bytes | None:
        """Return the stored bytes of `key`, None when there is no such artifact."""
        try:
            size = await self.store.size(key)
        except FileNotFoundError:
            return None
        return b"".join([chunk async for chunk in self.store.read(key, 0, size)])


# --- the registry's governance events ----------------------------------------------------------


async def registry_says(
    tenant: Tenant, event_type: str, data: dict[str, Any], *, at: datetime | None = None
) -> CloudEvent:
    event = CloudEvent(
        type=event_type,
        source="modelyard/registry",
        data={"workspace": tenant.workspace, **data},
        **({"time": at} if at else {}),
    )
    await publish_event(tenant.broker, event)
    return event


async def choose_gate(tenant: Tenant, gate: str, *, at: datetime | None = None) -> CloudEvent:
    return await registry_says(
        tenant, "registry.policy.updated", {"gate": gate, "updated_by": "root"}, at=at
    )


async def projected(app: FastAPI, tenant: Tenant, *, gate: str, approval: str) -> None:
    """Wait until the deployer's projection holds the workspace's gate and the model's approval."""

    async def applied() -> bool:
        async with app.state.sessionmaker() as session:
            found = (
                await session.execute(
                    text(
                        "SELECT (SELECT gate FROM deployer.workspace_policies"
                        " WHERE workspace = :w), (SELECT approval FROM deployer.model_approvals"
                        " WHERE model_id = :m)"
                    ),
                    {"w": tenant.workspace, "m": tenant.model_id},
                )
            ).one()
        return tuple(found) == (gate, approval)

    await eventually(applied)


def model_data(tenant: Tenant, approval: str, **extra: Any) -> dict[str, Any]:
    return {
        **tenant.registry.models[str(tenant.model_id)],
        "approval": approval,
        "updated_by": "bob",
        **extra,
    }


async def processed(app: FastAPI, event: CloudEvent, *, within: float = 10.0) -> None:
    """Wait until a consumer of the deployer has applied `event` (and committed its effects)."""

    async def seen() -> bool:
        async with app.state.sessionmaker() as session:
            found = await session.scalar(
                text("SELECT count(*) FROM deployer.processed_events WHERE event_id = :id"),
                {"id": event.id},
            )
        return bool(found)

    await eventually(seen, within=within)
