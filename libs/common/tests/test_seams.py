"""Issue 18 at the shared layer: replays are authorized, logs hold no SQL values, and hostile
input (deep JSON, NaN, deep cursors, YAML alias bombs, bodiless errors) is a fast 4xx."""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Body, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy import String, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelyard_common.auth import Editor, Role, Viewer
from modelyard_common.db import SessionDep, make_engine, make_sessionmaker
from modelyard_common.errors import ForbiddenError, UnprocessableError
from modelyard_common.http import (
    IdempotencyKey,
    IdempotencyRecordMixin,
    created_response,
    run_idempotent,
)
from modelyard_common.inputs import JSONInputError, check_json, loads_guarded
from modelyard_common.manifest import Manifest, ManifestDocumentError, parse_manifest_document
from modelyard_common.pagination import decode_cursor
from modelyard_common.settings import ServiceSettings
from modelyard_common.web import create_app
from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_JWT_SECRET,
    assert_problem,
    bearer,
    recreate_database,
)

SCHEMA = "seams"


class _Base(DeclarativeBase):
    pass


class _Record(IdempotencyRecordMixin, _Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = {"schema": SCHEMA}  # noqa: RUF012


class _Thing(_Base):
    __tablename__ = "things"
    __table_args__ = {"schema": SCHEMA}  # noqa: RUF012
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    owner: Mapped[str] = mapped_column(String(200))
    # Stands for a sealed token: a CHECK the test breaks on purpose.
    sealed: Mapped[str | None] = mapped_column(String(60))


class ThingCreate(BaseModel):
    name: str
    token: SecretStr | None = None
    sealed: str | None = None


class ThingRead(BaseModel):
    id: uuid.UUID
    name: str
    owner: str


# Who may create things in a folder: the resource-level grant the route checks itself (like a
# model's access grants in the deployer), on top of the role its dependency requires.
GRANTS: dict[str, set[str]] = {}


def _seams_app(engine: AsyncEngine) -> FastAPI:
    router = APIRouter()

    @router.post("/folders/{folder}/things", status_code=201)
    async def create_thing(
        folder: str,
        body: ThingCreate,
        session: SessionDep,
        principal: Viewer,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        async def authorize() -> None:
            if principal.sub not in GRANTS.get(folder, set()) and not principal.has_role(
                Role.admin
            ):
                raise ForbiddenError("No grant on this folder.")

        async def create() -> ThingRead:
            await authorize()
            thing = _Thing(id=uuid.uuid4(), name=body.name, owner=principal.sub, sealed=body.sealed)
            session.add(thing)
            await session.flush()
            return ThingRead(id=thing.id, name=thing.name, owner=thing.owner)

        stored = await run_idempotent(
            session,
            _Record,
            principal=principal,
            operation=f"create_thing:{folder}",
            key=idempotency_key,
            payload=body,
            create=create,
            authorize=authorize if request.query_params.get("reauthorize") else None,
        )
        return created_response(stored)

    @router.put("/blobs/{name}", status_code=204)
    async def put_blob(name: str, session: SessionDep, principal: Editor) -> Response:
        body = ThingCreate(name=name, sealed=f"{name}-sealed")
        session.add(
            _Thing(id=uuid.uuid4(), name=body.name, owner=principal.sub, sealed=body.sealed)
        )
        await session.flush()
        return Response(status_code=204)

    @router.post("/echo")
    async def echo(body: dict[str, Any] = Body()) -> dict[str, Any]:
        return body

    @router.get("/empty-416")
    async def empty_416() -> Response:
        return Response(status_code=416, headers={"Content-Range": "bytes */10"})

    @router.get("/file")
    async def file() -> FileResponse:
        return FileResponse(Path(__file__))

    settings = ServiceSettings(env="dev", jwt_secret=TEST_JWT_SECRET, log_json=False)
    app = create_app(
        title="seams",
        description="seams",
        version="0",
        settings=settings,
        routers=[router],
        readiness=lambda request: {},
    )
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    return app


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_test_common_seams")
    made = make_engine(url, pool_size=2)
    async with made.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.run_sync(_Base.metadata.create_all)
        await conn.execute(
            text(
                f"ALTER TABLE {SCHEMA}.things ADD CONSTRAINT sealed_shape "
                "CHECK (sealed IS NULL OR sealed NOT LIKE '%boom%')"
            )
        )
    yield made
    await made.dispose()


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_seams_app(engine), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://seams") as c:
        yield c


# --- finding 6: idempotent replays are authorized ----------------------------------------------


async def test_another_callers_key_is_a_fresh_request_authorized_as_such(
    client: httpx.AsyncClient, adversarial_tally: Any
) -> None:
    folder, ws = f"f-{uuid.uuid4().hex[:8]}", f"ws-{uuid.uuid4().hex[:8]}"
    admin = bearer("admin", ws, sub="ada")
    viewer = bearer("viewer", ws, sub="vic")
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"name": "secret-plan"}

    first = await client.post(f"/folders/{folder}/things", json=body, headers=admin | key)
    assert first.status_code == 201, first.text
    # The viewer has no grant: replaying the admin's key and body is refused as a fresh request
    # would be, and shows nothing of the admin's thing.
    replay = await client.post(f"/folders/{folder}/things", json=body, headers=viewer | key)
    assert_problem(replay, 403)
    assert first.json()["id"] not in replay.text
    # The admin's own retry still replays.
    again = await client.post(f"/folders/{folder}/things", json=body, headers=admin | key)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    # A granted editor with the same key gets a thing of their own, not the admin's.
    GRANTS[folder] = {"eve"}
    editor = bearer("editor", ws, sub="eve")
    own = await client.post(f"/folders/{folder}/things", json=body, headers=editor | key)
    assert own.status_code == 201
    assert "Idempotent-Replayed" not in own.headers
    assert own.json()["id"] != first.json()["id"]
    assert own.json()["owner"] == "eve"
    bypasses = int(replay.status_code < 300)
    adversarial_tally.add(probes=4, server_errors=0, gate_bypasses=bypasses)


async def test_a_replay_is_reauthorized_when_the_route_asks(client: httpx.AsyncClient) -> None:
    folder, ws = f"f-{uuid.uuid4().hex[:8]}", f"ws-{uuid.uuid4().hex[:8]}"
    GRANTS[folder] = {"gus"}
    granted = bearer("viewer", ws, sub="gus")
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    path = f"/folders/{folder}/things?reauthorize=1"
    assert (await client.post(path, json={"name": "a"}, headers=granted | key)).status_code == 201
    GRANTS[folder] = set()  # the grant is revoked: the retry is refused, not replayed
    assert_problem(await client.post(path, json={"name": "a"}, headers=granted | key), 403)


async def test_the_same_key_with_another_body_or_secret_is_a_422_and_no_secret_is_stored(
    client: httpx.AsyncClient, engine: AsyncEngine, secret_watch: Any, adversarial_tally: Any
) -> None:
    folder, ws = f"f-{uuid.uuid4().hex[:8]}", f"ws-{uuid.uuid4().hex[:8]}"
    admin = bearer("admin", ws, sub="ada")
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    token_a, token_b = f"tok-a-{uuid.uuid4().hex}", f"tok-b-{uuid.uuid4().hex}"
    secret_watch.add(token_a, token_b)
    path = f"/folders/{folder}/things"
    first = await client.post(path, json={"name": "x", "token": token_a}, headers=admin | key)
    assert first.status_code == 201
    statuses = []
    for body in ({"name": "y", "token": token_a}, {"name": "x", "token": token_b}, {"name": "x"}):
        response = await client.post(path, json=body, headers=admin | key)
        assert_problem(response, 422, "Idempotency-Key")
        statuses.append(response.status_code)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(_Record).where(_Record.workspace == ws))).all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert token_a not in stored
    assert token_b not in stored
    adversarial_tally.add(probes=4, server_errors=sum(s >= 500 for s in statuses))


# --- finding 7: database errors never log SQL parameters or row values ------------------------


async def test_a_failed_write_logs_no_parameter_or_row_value(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    secret_watch: Any,
    adversarial_tally: Any,
) -> None:
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    editor = bearer("editor", ws, sub="eve")
    sealed = f"gAAAAAboom{uuid.uuid4().hex}"  # breaks the CHECK: "Failing row contains (...)"
    too_long = f"sealed-{uuid.uuid4().hex}" * 3  # past varchar(60): "value too long"
    secret_watch.add(sealed, too_long)
    caplog.set_level(logging.DEBUG)
    for body in ({"name": "a", "sealed": sealed}, {"name": "b", "sealed": too_long}):
        response = await client.post(
            f"/folders/f-{uuid.uuid4().hex[:6]}/things",
            json=body,
            headers=bearer("admin", ws, sub="ada"),
        )
        assert response.status_code == 500  # a bug on purpose: the write breaks a constraint
        assert response.headers["content-type"] == "application/problem+json"
    response = await client.put("/blobs/boom", headers=editor)
    assert response.status_code == 500
    assert "unhandled error" in caplog.text  # the failures are logged ...
    seen = sum(value in caplog.text for value in (sealed, too_long, "boom-sealed"))
    assert seen == 0  # ... without the values
    assert "Failing row contains" not in caplog.text
    # The 500s are this test's own doing (writes breaking constraints), not hostile input's.
    adversarial_tally.add(probes=3, secrets_seen=seen)


# --- finding 9: hostile input is a fast 4xx ---------------------------------------------------


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


async def test_json_bodies_nested_deep_or_holding_nan_are_a_422_naming_the_field(
    client: httpx.AsyncClient, adversarial_tally: Any
) -> None:
    headers = {"content-type": "application/json"}
    probes = server_errors = 0
    for raw in (_deep(5000), b"[" * 100_000 + b"]" * 100_000, _deep(65)):
        response = await client.post("/echo", content=raw, headers=headers)
        probes += 1
        server_errors += response.status_code >= 500
        body = assert_problem(response, 422)
        assert body["errors"][0]["type"] == "json_too_deep"
    for raw, field in (
        (b'{"properties": {"x": NaN}}', "properties.x"),
        (b'{"a": [1, Infinity]}', "a.1"),
        (b'{"a": {"b": -Infinity}}', "a.b"),
        (b'{"p": 1e309}', "p"),
        (b'{"p": -1.5E+400}', "p"),
    ):
        response = await client.post("/echo", content=raw, headers=headers)
        probes += 1
        server_errors += response.status_code >= 500
        body = assert_problem(response, 422, field)
        assert body["errors"][0]["type"] == "finite_number"
    # Ordinary documents pass: depth 64, numbers near the limits, look-alikes inside strings.
    fine = b'{"a": 1e308, "b": -2.5e-300, "c": "NaN [[[ Infinity 1e999", "d": 10}'
    for raw in (_deep(63), fine):
        response = await client.post("/echo", content=raw, headers=headers)
        assert response.status_code == 200, response.text
    adversarial_tally.add(probes=probes + 2, server_errors=server_errors)


def test_the_json_guard_is_linear_and_loads_guarded_names_the_field() -> None:
    started = time.perf_counter()
    with pytest.raises(JSONInputError):
        check_json(b"[" * 1_000_000)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(JSONInputError) as caught:
        loads_guarded('{"rows": [{"v": 1}, {"v": NaN}]}')
    assert caught.value.path == ("rows", 1, "v")
    assert loads_guarded('{"a": "}}}"}') == {"a": "}}}"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_deep_or_huge_cursor_is_a_422_naming_the_cursor() -> None:
    deep = _b64(b'{"s":"name","v":' + b"[" * 5000 + b"]" * 5000 + b"}")
    nan = _b64(b'{"s":"name","v":[NaN,1]}')
    huge = "A" * 100_000
    for cursor in (deep, nan, huge, _b64(b"[" * 5000)):
        with pytest.raises(UnprocessableError) as caught:
            decode_cursor(cursor, "name")
        assert caught.value.errors is not None
        assert caught.value.errors[0].field == "cursor"


ALIAS_BOMB = (
    b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    b"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    b"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    b"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
)


@pytest.mark.parametrize(
    ("filename", "raw"),
    [
        ("modelyard.yaml", ALIAS_BOMB),
        ("modelyard.yaml", b"image: &i python\nmain: *i\n"),
        ("modelyard.yaml", b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n"),
        ("modelyard.yml", b"x:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 200))),
        ("modelyard.json", b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        ("modelyard.json", b'{"cores": NaN, "image": "x"}'),
        ("modelyard.json", b"{" + b" " * (300 * 1024) + b"}"),
    ],
    ids=["alias-bomb", "alias", "yaml-flow-5000", "yaml-block-200", "json-5000", "nan", "300k"],
)
def test_a_hostile_manifest_document_is_refused_fast(
    filename: str, raw: bytes, adversarial_tally: Any
) -> None:
    started = time.perf_counter()
    with pytest.raises(ManifestDocumentError) as caught:
        parse_manifest_document(filename, raw)
    assert isinstance(caught.value, ValueError)  # the upload boundary answers ValueErrors 422
    assert time.perf_counter() - started < 1.0
    adversarial_tally.add(probes=1)


def test_the_manifest_cpu_share_has_a_floor_that_never_reads_as_unlimited() -> None:
    base = {"image": "modelyard/python-base:bookworm", "handlers": [{"name": "predict"}]}
    for cores in (1e-12, 0.001, 0, -1, 257, float("nan")):
        with pytest.raises(ValidationError):
            Manifest.model_validate(base | {"cores": cores})
    for ram in (0, 15):
        with pytest.raises(ValidationError):
            Manifest.model_validate(base | {"max_ram_mb": ram})
    assert Manifest.model_validate(base | {"cores": 0.01}).cores == 0.01
    assert parse_manifest_document("modelyard.yaml", b"image: x\ncores: 0.5\n")["cores"] == 0.5


async def test_every_error_status_has_a_problem_body(
    client: httpx.AsyncClient, adversarial_tally: Any
) -> None:
    probes = 0
    checks: list[tuple[str, dict[str, str], int]] = [
        ("/empty-416", {}, 416),
        ("/file", {"Range": "bytes=999999999-"}, 416),
        ("/no-such-route", {}, 404),
    ]
    for path, headers, status in checks:
        response = await client.get(path, headers=headers)
        probes += 1
        body = assert_problem(response, status)
        assert body["instance"] == path
    response = await client.get("/empty-416")
    assert response.headers["Content-Range"] == "bytes */10"  # the route's headers are kept
    response = await client.delete("/echo")
    probes += 1
    assert_problem(response, 405)
    # A HEAD answer has no body by definition; a success is untouched.
    assert (await client.head("/empty-416")).content == b""
    assert (await client.get("/file")).status_code == 200
    adversarial_tally.add(probes=probes)
