"""libs/common units whose behaviour every service relies on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import uuid4

import pytest
from pydantic import ValidationError

from modelyard_common.auth import Principal, Role, decode_token, issue_token
from modelyard_common.errors import UnauthorizedError, UnprocessableError
from modelyard_common.http import check_if_match, make_etag, request_fingerprint
from modelyard_common.manifest import Manifest
from modelyard_common.pagination import decode_cursor, encode_cursor
from modelyard_common.settings import ServiceSettings

SECRET = "x" * 32


class _Demo(ServiceSettings):
    service_name: ClassVar[str] = "demo"
    own_flag: bool = False


def test_service_prefix_overrides_shared_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_DATABASE_URL", "postgresql+asyncpg://shared/db")
    monkeypatch.setenv("MODELYARD_DEMO_DATABASE_URL", "postgresql+asyncpg://own/db")
    monkeypatch.setenv("MODELYARD_AMQP_URL", "amqp://shared/")
    monkeypatch.setenv("MODELYARD_DEMO_OWN_FLAG", "true")
    monkeypatch.setenv("MODELYARD_CORS_ORIGINS", "http://a.test, http://b.test")
    settings = _Demo()
    assert settings.database_url == "postgresql+asyncpg://own/db"
    assert settings.amqp_url == "amqp://shared/"
    assert settings.own_flag is True
    assert settings.cors_origins == ["http://a.test", "http://b.test"]


def test_short_jwt_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_JWT_SECRET", "short")
    with pytest.raises(ValidationError):
        _Demo()


def test_token_round_trip_and_roles() -> None:
    token = issue_token(secret=SECRET, sub="bob", roles=["editor"], workspace="w1")
    principal = decode_token(token, secret=SECRET)
    assert principal == Principal(sub="bob", workspace="w1", roles=frozenset({"editor"}))
    assert principal.has_role(Role.viewer)
    assert principal.has_role(Role.editor)
    assert not principal.has_role(Role.admin)
    assert Principal(sub="x", workspace="w", roles=frozenset({"unknown"})).role is Role.viewer


def test_audience_is_enforced_when_configured() -> None:
    token = issue_token(secret=SECRET, sub="bob", roles=[], workspace="w", audience="other")
    with pytest.raises(UnauthorizedError):
        decode_token(token, secret=SECRET, audience="modelyard")


@pytest.mark.parametrize("value", ["a", 3, 2.5, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), uuid4()])
def test_cursor_round_trips_values(value: Any) -> None:
    cursor = encode_cursor("-name", [value, uuid4()])
    decoded = decode_cursor(cursor, "-name")
    assert decoded[0] == value
    with pytest.raises(UnprocessableError):
        decode_cursor(cursor, "name")


def test_if_match() -> None:
    check_if_match(make_etag(3), 3)
    check_if_match(f'W/{make_etag(3)}, "9"', 3)
    check_if_match("*", 3)
    with pytest.raises(Exception, match="changed since"):
        check_if_match(make_etag(2), 3)


def test_request_fingerprint_ignores_key_order() -> None:
    assert request_fingerprint({"a": 1, "b": 2}) == request_fingerprint({"b": 2, "a": 1})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})


def _manifest(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "image": "modelyard/python-base:bookworm",
        "main": "main.py",
        "handlers": [{"name": "predict"}],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dockerfile": True}, "exactly one"),
        ({"image": None}, "exactly one"),
        ({"main": "../escape.py"}, "relative path"),
        ({"main": "/abs.py"}, "relative path"),
        ({"handlers": [{"name": "not-an-identifier"}]}, "identifier"),
        ({"handlers": []}, "at least one handler"),
        ({"port": 70000}, "less than or equal"),
        ({"env": {"BAD-NAME": "x"}}, "environment variable"),
        ({"max_ram_mb": 1}, "greater than or equal"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_manifest_rejects(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Manifest.model_validate(_manifest(**changes))


def test_manifest_accepts_openai_project_without_handlers() -> None:
    manifest = Manifest.model_validate(
        _manifest(handlers=[], protocol="openai", image=None, dockerfile=True)
    )
    assert manifest.protocol == "openai"
    assert manifest.dockerfile is True
