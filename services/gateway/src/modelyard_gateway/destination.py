"""An instance's destination: where its requests, probes and secrets go, as one checked value.

A destination is (kind, host, port, protocol, path_prefix, base_url, health_path, proxy_url).
Its paths are paths: they start with `/` and hold only RFC 3986 path characters, without `@`,
`..` segments (also percent-encoded), `//`, backslashes, spaces or control characters. URLs are
built by putting a path into the path component of a parsed base URL, never by appending text
to a URL, and the result is checked to have kept the base's scheme and authority: nothing in a
path can move a request (and the token riding on it) to another host or port.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# The fields that say where an instance's traffic goes; changing any of them drops the stored
# secrets the request does not send again, and only admins may.
DESTINATION_FIELDS = (
    "kind",
    "host",
    "port",
    "protocol",
    "path_prefix",
    "base_url",
    "health_path",
    "proxy_url",
)


def destination_of(instance: object) -> dict[str, Any]:
    """Return an instance's destination: its values of `DESTINATION_FIELDS`, by name."""
    return {name: getattr(instance, name) for name in DESTINATION_FIELDS}


# `/segment`s of RFC 3986 pchars without '@' (it reads as userinfo to lax parsers) and without
# '%' (nothing to decode, so nothing hides a '..' or a '/'); a trailing '/' is allowed.
_PATH = re.compile(r"^(?:/[A-Za-z0-9._~!$&'()*+,;=:-]+)*/?$")
# The same rule for clients (JSON Schema, ECMA regex): no `.` or `..` segment either.
PATH_JSON_PATTERN = r"^(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._~!$&'()*+,;=:-]+)*/?$"
PATH_RULE = (
    "must be a path: '/' then URL path characters (letters, digits, -._~!$&'()*+,;=:), "
    "no '@', '%', '?', '#', '\\', spaces or control characters, no '.' or '..' segment, no '//'"
)


class DestinationError(ValueError):
    """A path or URL that is not a destination the gateway builds requests for."""


def check_path(value: str) -> str:
    """Return `value` if it is a safe URL path ('' allowed), else raise DestinationError."""
    if value == "":
        return value
    if not _PATH.fullmatch(value) or any(s in (".", "..") for s in value.split("/")):
        raise DestinationError(PATH_RULE)
    return value


def check_base(url: str) -> str:
    """Return an absolute http(s) URL without userinfo, query or fragment and with a safe path."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationError("must be an absolute http(s) URL")
    if "@" in parts.netloc or parts.query or parts.fragment or "?" in url or "#" in url:
        raise DestinationError("must have no user name, query or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise DestinationError("the URL's port is not a number") from exc
    check_path(parts.path.rstrip("/"))
    return url


def join(base: str, path: str) -> str:
    """Return `base` with `path` put after its own path, keeping its scheme and authority."""
    check_path(path)
    parts = urlsplit(check_base(base))
    joined = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))
    after = urlsplit(joined)
    if (after.scheme, after.netloc) != (parts.scheme, parts.netloc):
        raise DestinationError("the path would leave the instance's host")
    return joined


def local_base(*, protocol: str, host: str, port: int, path_prefix: str) -> str:
    """Return the base URL of a local instance (host and port, then its path prefix)."""
    prefix = path_prefix.rstrip("/")
    check_path(prefix)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return check_base(urlunsplit((protocol, netloc, prefix, "", "")))
