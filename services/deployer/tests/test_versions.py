"""Model versions: streamed upload, validation without extraction, numbering, download, delete."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import stat
import uuid
import zipfile
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest
import yaml
from deployer_testkit import (
    DEFAULT_MANIFEST,
    MAIN_PY,
    ArtifactBackend,
    Tenant,
    eventually,
    project_zip,
    publish_event,
)
from fastapi import FastAPI
from sqlalchemy import text

from modelyard_common.events import new_event


async def test_upload_records_size_hash_and_manifest(
    tenant: Tenant, artifact_backend: ArtifactBackend
) -> None:
    archive = project_zip({"main.py": MAIN_PY, "weights/model.bin": b"\x01" * 5000})

    response = await tenant.upload(archive, title="First cut", comment="baseline")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["number"] == 1
    assert body["title"] == "First cut"
    assert body["comment"] == "baseline"
    assert body["sha256"] == hashlib.sha256(archive).hexdigest()
    assert body["size_bytes"] == len(archive)
    assert body["file_count"] == 2
    assert body["manifest"]["handlers"] == [{"name": "predict", "description": "Echo the payload"}]
    assert response.headers["location"] == f"/v1/versions/{body['id']}"
    assert await artifact_backend.content(f"{tenant.model_id}/{body['id']}.zip") == archive
    fetched = await tenant.client.get(f"/v1/versions/{body['id']}", headers=tenant.admin)
    assert fetched.json() == body


async def test_manifest_can_come_from_yaml_inside_the_zip(tenant: Tenant) -> None:
    manifest = {**DEFAULT_MANIFEST, "main": "app/serve.py", "port": 9000}
    archive = project_zip(
        {"app/serve.py": MAIN_PY, "modelyard.yaml": yaml.safe_dump(manifest).encode()}
    )

    response = await tenant.upload(archive, manifest=None)

    assert response.status_code == 201, response.text
    assert response.json()["manifest"]["main"] == "app/serve.py"
    assert response.json()["manifest"]["port"] == 9000
    assert response.json()["title"] == "Version 1"


async def test_versions_are_numbered_per_model_even_when_uploaded_together(tenant: Tenant) -> None:
    responses = await asyncio.gather(*(tenant.upload() for _ in range(4)))
    other_model = tenant.add_model("other")
    other = await tenant.upload(model_id=other_model)

    assert sorted(r.json()["number"] for r in responses) == [1, 2, 3, 4]
    assert other.json()["number"] == 1
    listed = await tenant.client.get(
        f"/v1/models/{tenant.model_id}/versions", params={"limit": 3}, headers=tenant.admin
    )
    page = listed.json()
    assert [v["number"] for v in page["items"]] == [4, 3, 2]
    rest = await tenant.client.get(
        f"/v1/models/{tenant.model_id}/versions",
        params={"limit": 3, "cursor": page["next_cursor"]},
        headers=tenant.admin,
    )
    assert [v["number"] for v in rest.json()["items"]] == [1]
    assert rest.json()["next_cursor"] is None


def _symlink() -> bytes:
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return project_zip(infos=[(info, b"/etc/passwd")])


def _bomb() -> bytes:
    # 30 MB of zeros deflates to ~30 KB: a ratio of ~1000, far above the limit of 200.
    return project_zip({"main.py": MAIN_PY, "zeros.bin": bytes(30 * 1024 * 1024)})


BadZip = tuple[Callable[[], bytes], dict[str, Any] | str | None, int, str]

BAD_ZIPS: dict[str, BadZip] = {
    "not-a-zip": (lambda: b"this is not a zip" * 100, DEFAULT_MANIFEST, 422, "not a readable zip"),
    "zip-slip": (
        lambda: project_zip({"main.py": MAIN_PY, "../../etc/cron.d/evil": b"x"}),
        DEFAULT_MANIFEST,
        422,
        "escapes the target",
    ),
    "absolute-path": (
        lambda: project_zip({"main.py": MAIN_PY, "/etc/evil": b"x"}),
        DEFAULT_MANIFEST,
        422,
        "absolute path",
    ),
    "symlink": (
        lambda: project_zip({"main.py": MAIN_PY}, infos=[(_symlink_info(), b"/etc/passwd")]),
        DEFAULT_MANIFEST,
        422,
        "symbolic link",
    ),
    "bomb": (_bomb, DEFAULT_MANIFEST, 422, "compression ratio"),
    "missing-main": (
        lambda: project_zip({"other.py": MAIN_PY}),
        DEFAULT_MANIFEST,
        422,
        "main file 'main.py' is not in the zip",
    ),
    "missing-dockerfile": (
        lambda: project_zip({"main.py": MAIN_PY}),
        {**DEFAULT_MANIFEST, "image": None, "dockerfile": True},
        422,
        "no Dockerfile",
    ),
    "bad-manifest": (
        lambda: project_zip(),
        {**DEFAULT_MANIFEST, "port": 70000, "surprise": 1},
        422,
        "run manifest is invalid",
    ),
    "manifest-not-json": (lambda: project_zip(), "{not json", 422, "not valid JSON"),
    "zip-manifest-not-yaml": (
        lambda: project_zip({"main.py": MAIN_PY, "modelyard.yaml": b"handlers: [unclosed"}),
        None,
        422,
        "modelyard.yaml is unreadable",
    ),
    "no-manifest": (lambda: project_zip(), None, 422, "No run manifest"),
    "oversize": (
        # Random bytes stored uncompressed: passes every zip rule, but is above the 4 MB limit.
        lambda: project_zip(
            {"main.py": MAIN_PY, "big.bin": _random(5 * 1024 * 1024)},
            compression=zipfile.ZIP_STORED,
        ),
        DEFAULT_MANIFEST,
        413,
        "larger than the limit",
    ),
}


def _symlink_info() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("link-to-passwd")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _random(size: int) -> bytes:
    return os.urandom(size)


@pytest.mark.parametrize("case", sorted(BAD_ZIPS))
async def test_bad_zip_is_refused_and_nothing_is_stored(
    tenant: Tenant, artifact_backend: ArtifactBackend, case: str
) -> None:
    build, manifest, status, says = BAD_ZIPS[case]
    before = await artifact_backend.everything()

    response = await tenant.upload(build(), manifest=manifest)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert says in json.dumps(problem)
    if status == 422:
        assert problem["errors"], problem
    assert await artifact_backend.everything() == before
    listed = await tenant.client.get(f"/v1/models/{tenant.model_id}/versions", headers=tenant.admin)
    assert listed.json()["items"] == []


async def test_over_long_title_and_comment_are_refused(tenant: Tenant) -> None:
    too_long_title = await tenant.upload(title="t" * 31)
    too_long_comment = await tenant.upload(comment="c" * 513)

    assert too_long_title.status_code == 422
    assert too_long_title.json()["errors"][0]["field"] == "title"
    assert too_long_comment.status_code == 422
    assert too_long_comment.json()["errors"][0]["field"] == "comment"


async def test_unknown_model_is_404_and_archived_model_gets_no_version(tenant: Tenant) -> None:
    unknown = await tenant.upload(model_id=uuid.uuid4())
    archived = await tenant.upload(model_id=tenant.add_model("old", archived=True))

    assert unknown.status_code == 404
    assert archived.status_code == 409
    assert "archived" in archived.json()["detail"]


async def projected(app: FastAPI, model_id: uuid.UUID) -> dict[str, object] | None:
    """Return the deployer's projection row of a registry model, if it has one."""
    async with app.state.sessionmaker() as session:
        row = (
            await session.execute(
                text("SELECT archived, deleted FROM deployer.registry_models WHERE id = :id"),
                {"id": model_id},
            )
        ).first()
    return dict(row._mapping) if row else None


async def registry_event(tenant: Tenant, event_type: str, model: dict[str, object]) -> None:
    await publish_event(
        tenant.broker, new_event(type=event_type, source="modelyard-registry", data=model)
    )


async def test_registry_events_keep_the_projection(tenant: Tenant, app: FastAPI) -> None:
    """The registry's events, not only HTTP, decide whether a model takes new versions."""
    version = await tenant.new_version()
    device = await tenant.register_device("edge", connect=False)
    model = tenant.registry.models[str(tenant.model_id)]

    await registry_event(tenant, "registry.model.archived", {**model, "archived": True})

    async def archived() -> bool:
        return (await projected(app, tenant.model_id)) == {"archived": True, "deleted": False}

    await eventually(archived)
    assert (await tenant.upload()).status_code == 409
    deploy = await tenant.client.post(
        "/v1/deployments",
        json={"version_id": version["id"], "device_ids": [str(device.id)]},
        headers=tenant.admin,
    )
    assert deploy.status_code == 409
    await registry_event(tenant, "registry.model.unarchived", model)
    await eventually(lambda: _is(projected(app, tenant.model_id), archived=False))
    assert (await tenant.upload()).status_code == 201


async def test_model_known_from_its_event_alone_until_deleted(tenant: Tenant, app: FastAPI) -> None:
    fresh = uuid.uuid4()
    model = {"id": str(fresh), "name": "fresh", "archived": False, "workspace": tenant.workspace}
    await registry_event(tenant, "registry.model.created", model)
    await eventually(lambda: _is(projected(app, fresh), archived=False))
    hits = tenant.registry.hits

    created = await tenant.upload(model_id=fresh)

    assert created.status_code == 201, created.text
    assert tenant.registry.hits == hits  # answered from the projection, not over HTTP
    await registry_event(tenant, "registry.model.deleted", model)
    await eventually(lambda: _is(projected(app, fresh), deleted=True))
    assert (await tenant.upload(model_id=fresh)).status_code == 404
    # A late `updated` event about a deleted model does not bring it back.
    await registry_event(tenant, "registry.model.updated", {**model, "name": "zombie"})
    await asyncio.sleep(0.5)
    assert (await tenant.upload(model_id=fresh)).status_code == 404


async def _is(row: Awaitable[dict[str, object] | None], **expected: object) -> bool:
    found = await row
    return found is not None and all(found[k] == v for k, v in expected.items())


async def test_download_whole_and_by_range(
    tenant: Tenant, artifact_backend: ArtifactBackend
) -> None:
    archive = project_zip(
        {"main.py": MAIN_PY, "blob": _random(300_000)}, compression=zipfile.ZIP_STORED
    )
    version = await tenant.new_version(archive=archive)
    url = version["artifact_url"]

    whole = await tenant.client.get(url, headers=tenant.admin)
    part = await tenant.client.get(url, headers={**tenant.admin, "Range": "bytes=1000-"})
    tail = await tenant.client.get(url, headers={**tenant.admin, "Range": "bytes=-10"})
    beyond = await tenant.client.get(
        url, headers={**tenant.admin, "Range": f"bytes={len(archive) + 5}-"}
    )

    assert whole.status_code == 200
    assert whole.content == archive
    assert whole.headers["etag"] == f'"{version["sha256"]}"'
    assert part.status_code == 206
    assert part.content == archive[1000:]
    assert part.headers["content-range"] == f"bytes 1000-{len(archive) - 1}/{len(archive)}"
    assert tail.content == archive[-10:]
    assert beyond.status_code == 416
    assert await artifact_backend.content(f"{tenant.model_id}/{version['id']}.zip") == archive


async def test_interrupted_download_resumes_where_it_stopped(
    tenant: Tenant, artifact_backend: ArtifactBackend
) -> None:
    """A device that got part of the zip asks for the rest with If-Range; a stale copy gets all."""
    archive = project_zip(
        {"main.py": MAIN_PY, "blob": _random(2_500_000)}, compression=zipfile.ZIP_STORED
    )
    version = await tenant.new_version(archive=archive)
    url = version["artifact_url"]
    first = await tenant.client.get(url, headers=tenant.admin)
    got = first.content[:700_000]  # the connection dropped here

    etag = f'"{version["sha256"]}"'
    rest = await tenant.client.get(
        url, headers={**tenant.admin, "Range": f"bytes={len(got)}-", "If-Range": etag}
    )
    stale = await tenant.client.get(
        url, headers={**tenant.admin, "Range": f"bytes={len(got)}-", "If-Range": '"other"'}
    )

    assert rest.status_code == 206
    assert got + rest.content == archive
    assert hashlib.sha256(got + rest.content).hexdigest() == version["sha256"]
    assert stale.status_code == 200
    assert stale.content == archive


async def test_delete_version_removes_it_and_its_zip(
    tenant: Tenant, artifact_backend: ArtifactBackend
) -> None:
    version = await tenant.new_version()
    key = f"{tenant.model_id}/{version['id']}.zip"
    assert await artifact_backend.content(key) is not None

    deleted = await tenant.client.delete(f"/v1/versions/{version['id']}", headers=tenant.admin)

    assert deleted.status_code == 204
    gone = await tenant.client.get(f"/v1/versions/{version['id']}", headers=tenant.admin)
    assert gone.status_code == 404

    async def zip_removed() -> bool:
        return await artifact_backend.content(key) is None

    await eventually(zip_removed)
    # Numbers are never reused, even after a delete.
    assert (await tenant.new_version())["number"] == 2


async def test_idempotent_upload_returns_the_first_version(
    tenant: Tenant, artifact_backend: ArtifactBackend
) -> None:
    headers = {**tenant.admin, "Idempotency-Key": "upload-1"}
    # One archive for both tries: zips carry timestamps, so a rebuilt one may differ.
    archive = project_zip()
    first = await tenant.upload(archive, headers=headers, title="once")
    again = await tenant.upload(archive, headers=headers, title="once")
    other_bytes = await tenant.upload(
        project_zip({"main.py": MAIN_PY + b"# changed"}), headers=headers, title="once"
    )

    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert other_bytes.status_code == 422
    listed = await tenant.client.get(f"/v1/models/{tenant.model_id}/versions", headers=tenant.admin)
    assert len(listed.json()["items"]) == 1
    # The replayed and the refused upload left nothing: only the first version's zip is there.
    held = {k for k in await artifact_backend.everything() if str(tenant.model_id) in k}
    assert len(held) == 1, held


def test_symlink_builder_really_builds_a_symlink() -> None:
    with zipfile.ZipFile(io.BytesIO(_symlink())) as archive:
        mode = archive.infolist()[-1].external_attr >> 16
    assert stat.S_ISLNK(mode)


async def test_upload_cut_off_midway_leaves_nothing(
    tenant: Tenant, app: FastAPI, artifact_backend: ArtifactBackend
) -> None:
    """The client disconnects after 2 MB of a 3 MB zip: no file, no row, no open upload."""
    await tenant.new_version()  # the model is known; only the cut-off upload is at stake
    before = await artifact_backend.everything()
    boundary = "cutoff-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    chunks = [head, *(os.urandom(256 * 1024) for _ in range(8))]
    messages: list[dict[str, object]] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]
    messages.append({"type": "http.disconnect"})
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # nothing more will come
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    headers = [
        (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        (b"content-length", str(3 * 1024 * 1024).encode()),
        (b"authorization", tenant.admin["Authorization"].encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/v1/models/{tenant.model_id}/versions",
        "raw_path": f"/v1/models/{tenant.model_id}/versions".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("deployer.test", 80),
        "state": {},
    }

    await asyncio.wait_for(app(scope, receive, send), 10)

    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [400]
    assert await artifact_backend.everything() == before
    listed = await tenant.client.get(f"/v1/models/{tenant.model_id}/versions", headers=tenant.admin)
    assert [v["number"] for v in listed.json()["items"]] == [1]
