"""What instance fields may hold: patterns, header rules, URLs (pydantic validators' helpers)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from modelyard_gateway.destination import check_base, check_path

# A DNS name or an IPv4 address: what a URL can always be built from.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*$"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an RFC 9110 token
# RFC 9110 field-value: visible ASCII, obs-text (Latin-1), spaces and tabs; what goes on the wire.
HEADER_VALUE = r"^[\t\u0020-\u007e\u0080-\u00ff]*$"
# Paths (path_prefix, health_path, a URL's path): see `destination.check_path`, which also
# refuses '.' and '..' segments (this pattern has no lookahead to say so).
_PCHARS = r"[A-Za-z0-9._~!$&'()*+,;=:-]"
PREFIX_PATTERN = rf"^(?:/{_PCHARS}+)*/?$"
URL_PATTERN = rf"^https?://{_LABEL}(?:\.{_LABEL})*(?::{_PORT})?(?:/{_PCHARS}+)*/?$"

HEADERS_SCHEMA: dict[str, Any] = {
    "propertyNames": {"pattern": HEADER_NAME, "maxLength": 200},
    "additionalProperties": {"type": "string", "pattern": HEADER_VALUE},
}
# Secret headers: the same names (values are write-only strings), at most 20 of them.
SECRET_HEADERS_SCHEMA: dict[str, Any] = {**HEADERS_SCHEMA, "maxProperties": 20}


def valid_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    return check_base(value.rstrip("/"))


def valid_path(value: str | None) -> str | None:
    if value is None:
        return None
    if value and not value.startswith("/"):
        raise ValueError("must start with '/'")
    return check_path(value)


def finite(value: Any, where: str = "") -> None:
    """Raise ValueError naming the place of a NaN or infinite number inside a JSON value."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(
            f"{where or 'the value'} is not a finite number (NaN and Infinity are not JSON)"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            finite(item, f"{where}[{index}]")


# Header names that carry credentials: they belong in the sealed `secret_headers`.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_CREDENTIAL_WORDS = ("key", "token", "secret", "auth", "password", "signature", "session")


def looks_like_credential(name: str) -> bool:
    """Return whether a header of this name most likely carries a credential."""
    lowered = name.lower()
    return lowered in _CREDENTIAL_HEADERS or any(word in lowered for word in _CREDENTIAL_WORDS)


def _check_header_lines(names: Iterable[str], values: Iterable[str]) -> None:
    for name in names:
        if (
            not name
            or len(name) > 200
            or not re.match(HEADER_NAME, name)
            or any(c in name for c in " :\r\n")
            or name.lower() in {"host", "content-length", "transfer-encoding", "connection"}
        ):
            raise ValueError(f"header name {name!r} is not allowed")
    for header_value in values:
        if "\r" in header_value or "\n" in header_value:
            raise ValueError("header values cannot contain line breaks")
        if not re.match(HEADER_VALUE, header_value):
            raise ValueError(
                "header values hold visible ASCII or Latin-1 text, spaces and tabs only"
            )


def valid_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    _check_header_lines(value, value.values())
    for name in value:
        if looks_like_credential(name):
            raise ValueError(
                f"header {name!r} looks like a credential: send it in secret_headers "
                "(sealed, never shown)"
            )
    return value


def valid_secret_headers(
    value: dict[str, SecretStr] | None,
) -> dict[str, SecretStr] | None:
    if value is None:
        return None
    if len(value) > 20:
        raise ValueError("at most 20 secret headers")
    _check_header_lines(value, (v.get_secret_value() for v in value.values()))
    if any(name.lower() == "authorization" for name in value):
        raise ValueError("send `Authorization: Bearer` as `token`")
    return value


def valid_proxy_url(value: str | None) -> str | None:
    value = valid_url(value)
    if value is not None:
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "credentials are not accepted inside proxy_url: send proxy_username and "
                "proxy_password (sealed, never shown)"
            )
    return value
