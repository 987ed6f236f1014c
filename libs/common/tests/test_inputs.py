"""Hostile input found by fuzzing, at the shared layer: cursors, claims, zips, request guard."""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import APIRouter, Body
from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelyard_common.archive import (
    ArchiveLimits,
    UnsafeArchiveError,
    extract_archive,
    inspect_archive,
)
from modelyard_common.auth import Principal, decode_token, issue_token
from modelyard_common.errors import UnauthorizedError, UnprocessableError
from modelyard_common.pagination import decode_cursor, encode_cursor
from modelyard_common.settings import ServiceSettings
from modelyard_common.web import create_app

SECRET = "x" * 32
NO_NUL_PATTERN = r"^[^\u0000]*$"  # what the OpenAPI says of every free string


class _Base(DeclarativeBase):
    pass


class _Row(_Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[Any] = mapped_column(DateTime(timezone=True))


def _crafted(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "values",
    [
        [1, 2],  # the issue's example: numbers where the sort key is text
        ["a"],  # too few
        ["a", 1, 2],  # too many
        ["a", 2**40],  # id out of the integer column's range
        ["a\u0000b", 1],  # NUL in text
        [None, 1],
        ["a", True],  # a boolean is not an integer
        [{"x": 1}, 1],
    ],
)
def test_a_crafted_cursor_is_checked_against_the_sort_keys(values: list[Any]) -> None:
    cursor = _crafted({"s": "name", "v": values})
    with pytest.raises(UnprocessableError):
        decode_cursor(cursor, "name", [_Row.name, _Row.id])


def test_crafted_times_must_be_times_with_a_zone() -> None:
    naive = _crafted({"s": "created_at", "v": [{"dt": "2026-01-01T00:00:00"}, 1]})
    wrong = _crafted({"s": "created_at", "v": ["2026-01-01", 1]})
    bad_uuid = _crafted({"s": "created_at", "v": [{"uuid": 5}, 1]})
    for cursor in (naive, wrong, bad_uuid):
        with pytest.raises(UnprocessableError):
            decode_cursor(cursor, "created_at", [_Row.created_at, _Row.id])


def test_a_cursor_the_service_made_still_decodes() -> None:
    cursor = encode_cursor("name", ["alpha", 7])
    assert decode_cursor(cursor, "name", [_Row.name, _Row.id]) == ["alpha", 7]


@pytest.mark.parametrize(
    ("claims", "claim"),
    [
        ({"sub": "bob", "workspace": "w" * 150}, "workspace"),
        ({"sub": "s" * 300, "workspace": "w"}, "sub"),
        ({"sub": "bob", "workspace": "w", "roles": ["r" * 300]}, "roles"),
        ({"sub": "b\u0000b", "workspace": "w"}, "sub"),
    ],
)
def test_over_long_token_claims_are_unauthorized(claims: dict[str, Any], claim: str) -> None:
    token = issue_token(
        secret=SECRET,
        sub=claims["sub"],
        roles=claims.get("roles", []),
        workspace=claims["workspace"],
    )
    with pytest.raises(UnauthorizedError, match=claim):
        decode_token(token, secret=SECRET)
    with pytest.raises(UnauthorizedError):
        Principal(
            sub=claims["sub"],
            workspace=claims["workspace"],
            roles=frozenset(claims.get("roles", [])),
        )


def _zeros_zip(members: int, size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(members):
            archive.writestr(f"data/{index}.bin", b"\0" * size)
    return buffer.getvalue()


def test_many_small_zero_members_are_a_zip_bomb_as_a_whole(tmp_path: Path) -> None:
    # Each member is under ratio_min_bytes (so the per-member rule skips it), the whole is not:
    # the issue's 1,000 x 1 MiB, scaled down with the thresholds.
    limits = ArchiveLimits(ratio_min_bytes=64 * 1024, max_ratio=200)
    data = _zeros_zip(400, 64 * 1024)
    assert len(data) < 200 * 1024  # 25 MiB of zeros in a small upload
    with pytest.raises(UnsafeArchiveError, match="as a whole"):
        inspect_archive(io.BytesIO(data), limits)
    with pytest.raises(UnsafeArchiveError, match="as a whole"):
        extract_archive(io.BytesIO(data), tmp_path / "out", limits)
    assert not (tmp_path / "out").exists()


def test_an_ordinary_project_is_still_accepted(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("main.py", "def predict(p):\n    return p\n")
        archive.writestr("empty.txt", "")
        archive.writestr("weights.bin", os.urandom(2 * 1024 * 1024))
    summary = extract_archive(io.BytesIO(buffer.getvalue()), tmp_path / "ok", ArchiveLimits())
    assert sorted(summary.members) == ["empty.txt", "main.py", "weights.bin"]


class _Settings(ServiceSettings):
    service_name: ClassVar[str] = "demo"


def _demo_app() -> Any:
    router = APIRouter()
    seen: list[Any] = []

    @router.get("/things/{thing_id}", operation_id="get_thing")
    async def get_thing(thing_id: str, q: str | None = None) -> dict[str, Any]:
        return {"id": thing_id, "q": q}

    @router.patch("/things/{thing_id}", operation_id="update_thing")
    async def update_thing(thing_id: str, body: dict[str, Any] = Body()) -> dict[str, Any]:
        seen.append(body)
        return body

    @router.delete("/things/{thing_id}", operation_id="delete_thing", status_code=204)
    async def delete_thing(thing_id: str) -> None:
        return None

    app = create_app(
        title="demo",
        description="demo",
        version="0",
        settings=_Settings(max_request_bytes=4096),
        routers=[router],
        readiness=lambda request: {},
    )
    app.state.seen = seen
    return app


async def test_the_request_guard_refuses_nul_and_big_bodies_before_the_route() -> None:
    app = _demo_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        response = await client.get("/things/a", params={"q": "x\u0000y"})
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["loc"] == ["query", "q"]

        response = await client.patch("/things/a", json={"tags": {"k\u0000": ["v"]}})
        assert response.status_code == 422
        error = response.json()["errors"][0]
        assert error["loc"] == ["body", "tags", "k\ufffd"]  # the answer carries no NUL either
        assert error["type"] == "string_nul"

        response = await client.patch("/things/a", json={"pad": "x" * 5000})
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"

        async def chunks() -> Any:  # no Content-Length: counted as it arrives
            for _ in range(10):
                yield b" " * 1000

        response = await client.patch(
            "/things/a", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413

        # An escaped backslash before u0000 is text, not a NUL.
        response = await client.patch(
            "/things/a", content=b'{"t": "\\\\u0000"}', headers={"content-type": "application/json"}
        )
        assert response.status_code == 200
        assert response.json() == {"t": "\\u0000"}
    assert app.state.seen == [{"t": "\\u0000"}]


async def test_405_names_every_method_of_the_path() -> None:
    transport = httpx.ASGITransport(app=_demo_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        response = await client.put("/things/a", json={})
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "DELETE"}


def test_openapi_documents_problem_types_body_errors_and_nul_free_text() -> None:
    spec = _demo_app().openapi()
    patch = spec["paths"]["/things/{thing_id}"]["patch"]
    for status in ("400", "413", "422"):
        assert list(patch["responses"][status]["content"]) == ["application/problem+json"]
    parameters = spec["paths"]["/things/{thing_id}"]["get"]["parameters"]
    assert all(
        p["schema"].get("pattern") == NO_NUL_PATTERN or "anyOf" in p["schema"] for p in parameters
    )
    assert "HTTPValidationError" not in spec["components"]["schemas"]


async def test_absurdly_nested_json_with_an_escape_is_a_4xx_not_a_crash() -> None:
    transport = httpx.ASGITransport(app=_demo_app())
    body = b"[" * 2000 + b'"\\u0000"' + b"]" * 2000
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        response = await client.patch(
            "/things/a", content=body, headers={"content-type": "application/json"}
        )
    assert 400 <= response.status_code < 500
