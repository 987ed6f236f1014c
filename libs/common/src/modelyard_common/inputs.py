"""What every request must satisfy before a route sees it: a bounded body, text without NUL.

PostgreSQL cannot store U+0000 in `text` or `jsonb`, so a NUL in any field, filter or path would
only fail deep in a query. The rule "API text never contains NUL" is checked once, here, for the
request target (path and query) and for JSON bodies, and answered 422 naming the field.

Bodies are capped for every route (`max_request_bytes`, 413 past it): routes whose body is not a
JSON document of the API (an upload streamed to storage, a payload relayed to a model) are named
by method and path template with a limit of their own, or None when the route enforces one.

JSON is checked before it is parsed: nesting deeper than `MAX_JSON_DEPTH` is refused (a scan
of the brackets outside strings, no recursion), and so are `NaN`, `Infinity` and numbers past
the float range (Python's parser takes them, PostgreSQL's jsonb and every other client do not).
`loads_guarded` is that parse for bodies a route reads itself (imports, manifests, cursors).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard_common.errors import (
    PayloadTooLargeError,
    ProblemError,
    UnprocessableError,
    field_error,
    invalid_fields,
    problem_response,
)

NUL = "\x00"
NUL_MESSAGE = "Text may not contain the NUL character (U+0000)."
MAX_JSON_DEPTH = 64
NON_FINITE_MESSAGE = "NaN, Infinity and numbers beyond the float range are not accepted."

# A JSON string (escapes included), matched whole so brackets inside it are not counted.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS_ONLY = bytes(range(256)).translate(None, b"[]{}")
# Outside strings: a non-standard constant, or a number that may overflow a float (an exponent
# of three digits or more, or 309 digits before the point). Only then is the document parsed
# twice, to name the field.
_MAYBE_NON_FINITE = re.compile(rb"NaN|Infinity|[eE][+-]?[0-9]{3}|[0-9]{309}")


class JSONInputError(ValueError):
    """A JSON document refused before (or while) parsing; `path` is where inside it."""

    def __init__(self, message: str, *, path: tuple[str | int, ...] = (), type: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.type = type

    def to_error(self, loc: list[str | int]) -> UnprocessableError:
        """Return the 422 problem naming the field, `loc` being where the document is."""
        where = [*loc, *self.path]
        return invalid_fields([field_error(where, message=self.message, type=self.type)])


def json_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """Return how deep `raw`'s arrays and objects nest, stopping once past `limit`.

    Brackets inside strings do not count; the scan is linear and never recurses.
    """
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _BRACKETS_ONLY)
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


class _NonFinite:
    """Stands for a NaN, an Infinity or an overflowing number while it is being located."""


_NON_FINITE = _NonFinite()


def _finite_or_marker(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _NON_FINITE


def _find_marker(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    # Recursive, but only over documents whose depth was checked first.
    if value is _NON_FINITE:
        return path
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_marker(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_marker(item, (*path, index))
            if found is not None:
                return found
    return None


def check_json(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise JSONInputError if `raw` nests deeper than `max_depth` or holds a non-finite number.

    A document that is not JSON passes: its parser answers that. Cheap on ordinary documents
    (two regular-expression passes); a suspect number costs one parse to name its field.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    if json_depth(data, max_depth) > max_depth:
        raise JSONInputError(
            f"The JSON document nests deeper than {max_depth} levels.", type="json_too_deep"
        )
    if _MAYBE_NON_FINITE.search(_JSON_STRING.sub(b'""', data)) is None:
        return
    try:
        marked = json.loads(
            data, parse_constant=lambda _: _NON_FINITE, parse_float=_finite_or_marker
        )
    except (ValueError, RecursionError):
        return
    found = _find_marker(marked)
    if found is not None:
        raise JSONInputError(NON_FINITE_MESSAGE, path=found, type="finite_number")


def loads_guarded(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Return the parsed JSON document, checked first by `check_json`.

    Raises JSONInputError (depth, non-finite numbers) or json.JSONDecodeError (not JSON), both
    ValueErrors.
    """
    check_json(raw, max_depth=max_depth)
    return json.loads(raw)


def find_nul(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Return where the first NUL is inside a decoded JSON value (keys included), or None."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                return (*path, key)
            found = find_nul(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_nul(item, (*path, index))
            if found is not None:
                return found
    return None


def nul_error(loc: list[str | int]) -> UnprocessableError:
    """Return the 422 problem for a NUL at `loc` (e.g. `["body", "name"]`)."""
    # A key holding the NUL is named with U+FFFD in its place: the answer carries no NUL either.
    loc = [p.replace(NUL, "\ufffd") if isinstance(p, str) else p for p in loc]
    return invalid_fields([field_error(loc, message=NUL_MESSAGE, type="string_nul")])


def reject_nul(value: Any, loc: list[str | int]) -> None:
    """Raise a 422 naming the field when `value` holds a NUL anywhere."""
    found = find_nul(value)
    if found is not None:
        raise nul_error([*loc, *found])


def _target_nul(scope: Scope) -> list[str | int] | None:
    if NUL in scope.get("path", ""):
        return ["path"]
    query = scope.get("query_string", b"")
    if query and (b"%00" in query or b"\x00" in query):
        for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if NUL in key or NUL in value:
                return ["query", key]
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media.endswith((b"/json", b"+json"))
    return True  # no content type: checked as JSON, to be safe


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestGuardMiddleware:
    """Refuse NUL in the request target and JSON bodies (422), JSON nested too deep or holding
    NaN/Infinity (422), and bodies over a limit (413)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_request_bytes: int,
        raw_bodies: Mapping[tuple[str, str], int | None] | None = None,
    ) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self._raw_routes = [
            (method.upper(), compile_path(path)[0], limit)
            for (method, path), limit in (raw_bodies or {}).items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loc = _target_nul(scope)
        if loc is not None:
            await self._refuse(scope, send, nul_error(loc))
            return
        raw, limit = self._route_limit(scope)
        length = _content_length(scope)
        if limit is not None and length is not None and length > limit:
            await self._refuse(scope, send, _too_large(limit))
            return
        if raw:
            await self.app(scope, _counting(receive, limit) if limit is not None else receive, send)
            return
        body, more = await _read_up_to(receive, self.max_request_bytes)
        if more:
            await self._refuse(scope, send, _too_large(self.max_request_bytes))
            return
        if body and _is_json(scope):
            try:
                check_json(body)
            except JSONInputError as exc:
                await self._refuse(scope, send, exc.to_error(["body"]))
                return
            if b"u0000" in body:
                try:
                    found = find_nul(json.loads(body))
                except (ValueError, RecursionError):
                    found = None  # not JSON: the route's own parsing answers it
                if found is not None:
                    await self._refuse(scope, send, nul_error(["body", *found]))
                    return
        await self.app(scope, _replay(body, receive), send)

    def _route_limit(self, scope: Scope) -> tuple[bool, int | None]:
        """Return (is a raw-body route, its limit) for the request."""
        path = scope.get("path", "")
        for method, pattern, limit in self._raw_routes:
            if scope.get("method") == method and pattern.match(path):
                return True, limit
        return False, self.max_request_bytes

    @staticmethod
    async def _refuse(scope: Scope, send: Send, error: ProblemError) -> None:
        response = problem_response(error.to_problem(scope.get("path")), error.headers)
        await response(scope, _no_receive, send)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body is larger than {limit} bytes.")


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


async def _read_up_to(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """Return the body (at most `limit` bytes) and whether more was sent than that."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                # Raised inside the route's body read: the problem handlers answer it.
                raise HTTPException(413, f"The request body is larger than {limit} bytes.")
        return message

    return counting
