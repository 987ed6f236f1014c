"""Uploads over real HTTP (uvicorn on loopback): large zips arrive byte-exact, a client gone
halfway or over the limit leaves nothing behind, on the local store and on S3."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import select
import socket
import threading
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn
from deployer_testkit import (
    DEFAULT_MANIFEST,
    MAIN_PY,
    ArtifactBackend,
    Tenant,
    eventually,
)
from fastapi import FastAPI
from modelyard_testkit.testing import free_port

MiB = 1024 * 1024
LARGE_LIMIT = 64 * MiB
BOUNDARY = "streaming-test-boundary"


@dataclass
class LiveDeployer:
    """The test app served by uvicorn on a loopback port."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(app: FastAPI) -> AsyncIterator[LiveDeployer]:
    """Serve the (already started) app over real HTTP, as `modelyard-deployer serve` does."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.02)
    yield LiveDeployer("127.0.0.1", port)
    server.should_exit = True
    await task


@pytest.fixture
def large_uploads(app: FastAPI) -> Iterator[None]:
    """Raise the app's upload limit for one test (the suite's default is 4 MiB)."""
    previous = app.state.settings
    app.state.settings = previous.model_copy(update={"max_upload_bytes": LARGE_LIMIT})
    try:
        yield
    finally:
        app.state.settings = previous


def large_zip(path: Path, megabytes: int) -> bytes:
    """Write (and return) a project zip holding `megabytes` MiB of random, stored bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("main.py", MAIN_PY)
        with archive.open("weights.bin", "w", force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(os.urandom(MiB))
    return path.read_bytes()


def multipart_head(fields: dict[str, str]) -> bytes:
    """Return the multipart body up to the first byte of the `file` part's content."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="p.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    )
    return "".join(parts).encode()


def request_head(live: LiveDeployer, path: str, authorization: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {live.host}:{live.port}\r\n"
        f"Authorization: {authorization}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{extra}\r\n"
    ).encode()


def read_status(sock: socket.socket) -> tuple[int, bytes]:
    """Read an HTTP response until the peer closes (or 10 s pass); return status and body."""
    sock.settimeout(10)
    received = bytearray()
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            received += chunk
            head, _, body = bytes(received).partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                break
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def versions_of(tenant: Tenant) -> list[dict[str, object]]:
    listed = await tenant.client.get(f"/v1/models/{tenant.model_id}/versions", headers=tenant.admin)
    items: list[dict[str, object]] = listed.json()["items"]
    return items


@pytest.mark.usefixtures("large_uploads")
async def test_large_upload_is_stored_byte_exact_with_its_sha256(
    tenant: Tenant, live: LiveDeployer, artifact_backend: ArtifactBackend, tmp_path: Path
) -> None:
    """40 MiB over real HTTP: hundreds of chunks, eight S3 parts with several in flight."""
    archive = large_zip(tmp_path / "large.zip", 40)
    expected = hashlib.sha256(archive).hexdigest()

    async with httpx.AsyncClient(base_url=live.url, timeout=60) as http:
        response = await http.post(
            f"/v1/models/{tenant.model_id}/versions",
            files={"file": ("project.zip", archive, "application/zip")},
            data={"manifest": json.dumps(DEFAULT_MANIFEST), "title": "large"},
            headers=tenant.admin,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["sha256"] == expected
        assert body["size_bytes"] == len(archive)
        stored = await artifact_backend.content(f"{tenant.model_id}/{body['id']}.zip")
        assert stored is not None
        assert hashlib.sha256(stored).hexdigest() == expected
        assert stored == archive
        download = await http.get(body["artifact_url"], headers=tenant.admin)
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == expected
    leftovers = [k for k in await artifact_backend.everything() if not k.endswith(".zip")]
    assert leftovers == []


@pytest.mark.usefixtures("large_uploads")
async def test_client_gone_halfway_leaves_no_version_and_no_temp_file(
    tenant: Tenant, live: LiveDeployer, artifact_backend: ArtifactBackend
) -> None:
    """The client sends half of a 16 MiB zip and hangs up: no row, no staging file or part."""
    before = await artifact_backend.everything()
    head = multipart_head({"manifest": json.dumps(DEFAULT_MANIFEST)})
    size = 16 * MiB
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    path = f"/v1/models/{tenant.model_id}/versions"

    staged = threading.Event()

    def send_half() -> None:
        with socket.create_connection((live.host, live.port)) as sock:
            length = len(head) + size + len(tail)
            sock.sendall(
                request_head(
                    live, path, tenant.admin["Authorization"], f"Content-Length: {length}\r\n"
                )
            )
            sock.sendall(head)
            for _ in range(size // 2 // MiB):
                sock.sendall(os.urandom(MiB))
            staged.wait(20)  # hang up only once the server holds a staged upload

    async def something_staged() -> bool:
        return await artifact_backend.everything() != before

    async def all_gone() -> bool:
        return await artifact_backend.everything() == before

    sender = asyncio.create_task(asyncio.to_thread(send_half))
    try:
        # The server began storing it: a staging file, or a multipart upload and its spool.
        await eventually(something_staged, within=20)
    finally:
        staged.set()
        await sender

    await eventually(all_gone, within=20)
    assert await versions_of(tenant) == []


async def test_declared_over_limit_upload_is_refused_before_its_body(
    tenant: Tenant, live: LiveDeployer, artifact_backend: ArtifactBackend
) -> None:
    """A Content-Length over the limit is answered 413 without one byte of the body sent."""
    before = await artifact_backend.everything()
    path = f"/v1/models/{tenant.model_id}/versions"

    def ask() -> tuple[int, bytes]:
        with socket.create_connection((live.host, live.port)) as sock:
            sock.sendall(
                request_head(
                    live, path, tenant.admin["Authorization"], f"Content-Length: {10**10}\r\n"
                )
            )
            return read_status(sock)

    status, body = await asyncio.to_thread(ask)

    assert status == 413
    assert "limit" in json.loads(body)["detail"]
    assert await artifact_backend.everything() == before
    assert await versions_of(tenant) == []


async def test_streamed_over_limit_upload_is_cut_at_the_limit(
    tenant: Tenant, live: LiveDeployer, artifact_backend: ArtifactBackend, app: FastAPI
) -> None:
    """Chunked, with no length to judge first: refused once past the limit, not at the end."""
    before = await artifact_backend.everything()
    limit = app.state.settings.max_upload_bytes
    total = 8 * limit
    path = f"/v1/models/{tenant.model_id}/versions"
    head = multipart_head({"manifest": json.dumps(DEFAULT_MANIFEST)})

    def send() -> tuple[int, bytes, int]:
        sent = 0
        with socket.create_connection((live.host, live.port)) as sock:
            sock.sendall(
                request_head(
                    live, path, tenant.admin["Authorization"], "Transfer-Encoding: chunked\r\n"
                )
            )
            sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
            with contextlib.suppress(OSError):  # the server may hang up while we send
                # Stop as soon as an answer is there: it came before the body's end.
                while sent < total and not select.select([sock], [], [], 0)[0]:
                    sock.sendall(b"%x\r\n%s\r\n" % (256 * 1024, os.urandom(256 * 1024)))
                    sent += 256 * 1024
            status, body = read_status(sock)
            return status, body, sent

    status, body, sent = await asyncio.to_thread(send)

    assert status == 413
    assert "limit" in json.loads(body)["detail"]
    assert sent < total
    await eventually(lambda: _same(artifact_backend, before), within=10)
    assert await versions_of(tenant) == []


async def _same(backend: ArtifactBackend, before: set[str]) -> bool:
    return await backend.everything() == before
