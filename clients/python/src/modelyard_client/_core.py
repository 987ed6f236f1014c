"""What the sync and the async client share: calls, retries, answers and errors."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

import httpx

from modelyard_client.errors import ApiError, StreamError, api_error

T = TypeVar("T")
Service = Literal["registry", "deployer", "gateway"]

DEFAULT_URLS: dict[Service, str] = {
    "registry": "http://127.0.0.1:8001",
    "deployer": "http://127.0.0.1:8002",
    "gateway": "http://127.0.0.1:8000",
}
# Statuses worth another try of an idempotent call: the service (or a proxy) is busy or restarting.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
ProgressCallback = Callable[[int], None]
UPLOAD_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """A file sent as the `file` part of a multipart body, read in chunks from disk."""

    path: Path
    filename: str
    content_type: str = "application/zip"
    fields: Mapping[str, str] = field(default_factory=dict)
    on_progress: ProgressCallback | None = None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: where it goes, what it sends, whether it may be retried, how to read it."""

    method: str
    service: Service
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    upload: Upload | None = None
    # Safe to send again after a lost answer: reads, deletes, and creates with an Idempotency-Key.
    idempotent: bool = False
    # An answer that may stay quiet for as long as it is open (a followed log stream): no read
    # timeout, only the connect one.
    open_ended: bool = False

    def with_params(self, **params: Any) -> Call[T]:
        """Return the same call with more query parameters."""
        return replace(self, params={**(self.params or {}), **params})


OPEN_ENDED_CONNECT_S = 30.0


def identity(value: Any) -> Any:
    """Return the decoded JSON unchanged (the TypedDicts describe it)."""
    return value


def read(method: str, service: Service, path: str, **params: Any) -> Call[Any]:
    """Return an idempotent call without a body (GET, DELETE)."""
    query = {k: v for k, v in params.items() if v is not None}
    return Call(method, service, path, identity, params=query or None, idempotent=True)


def create(service: Service, path: str, body: Any) -> Call[Any]:
    """Return a POST that creates, with a fresh Idempotency-Key so a retry cannot create twice."""
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    return Call("POST", service, path, identity, json=body, headers=headers, idempotent=True)


def action(service: Service, path: str, body: Any = None) -> Call[Any]:
    """Return a POST that acts (not retried once it may have reached the service)."""
    return Call("POST", service, path, identity, json=body)


def patch(service: Service, path: str, body: Any, *, etag: str) -> Call[Any]:
    """Return a PATCH guarded by the ETag the caller read."""
    return Call("PATCH", service, path, identity, json=body, headers={"If-Match": etag})


@dataclass
class RetryPolicy:
    """How often and how long to wait before another try of an idempotent call."""

    attempts: int = 4
    backoff_s: float = 0.25
    max_backoff_s: float = 5.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Return the wait before try `attempt + 1` (Retry-After wins when the service sent it)."""
        if response is not None:
            after = response.headers.get("retry-after", "")
            if after.isdigit():
                return min(float(after), self.max_backoff_s)
        base: float = min(self.backoff_s * 2**attempt, self.max_backoff_s)
        return base * (0.5 + random.random() / 2)


def should_retry(
    call: Call[Any], *, response: httpx.Response | None, error: Exception | None
) -> bool:
    """Return whether a failed try of `call` may be repeated."""
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return True  # the request never reached the service
    if not call.idempotent:
        return False
    if error is not None:
        return isinstance(error, httpx.TransportError)
    return response is not None and response.status_code in RETRY_STATUSES


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """Return the problem document of an error response (a minimal one for non-JSON bodies)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if "error" in body and isinstance(body["error"], dict) and "title" not in body:
            # The OpenAI-style error the gateway's /v1 API answers with.
            error = body["error"]
            return {"title": str(error.get("type") or "error"), "detail": error.get("message")}
        return cast(dict[str, Any], body)
    text = response.text.strip()
    return {"title": response.reason_phrase or f"HTTP {response.status_code}", "detail": text[:300]}


def result_of(call: Call[T], response: httpx.Response) -> T:
    """Return the parsed answer of a successful response; raise ApiError otherwise."""
    if response.status_code >= 400:
        raise error_of(call, response)
    if response.status_code == 204 or not response.content:
        return call.parse(None)
    return call.parse(response.json())


def error_of(call: Call[Any], response: httpx.Response) -> ApiError:
    """Return the ApiError for an error response."""
    return api_error(
        status=response.status_code,
        problem=problem_of(response),
        method=call.method,
        url=str(response.request.url),
    )


@dataclass
class Endpoints:
    """Where each service answers and which credentials go with calls to it."""

    registry_url: str = DEFAULT_URLS["registry"]
    deployer_url: str = DEFAULT_URLS["deployer"]
    gateway_url: str = DEFAULT_URLS["gateway"]
    token: str | None = None
    gateway_key: str | None = None

    def url(self, service: Service, path: str) -> str:
        """Return the absolute URL of `path` on `service`."""
        base = {
            "registry": self.registry_url,
            "deployer": self.deployer_url,
            "gateway": self.gateway_url,
        }[service]
        return base.rstrip("/") + path

    def headers(self, call: Call[Any]) -> dict[str, str]:
        """Return the request headers of `call`, credentials included."""
        headers = {"Accept": "application/json", "User-Agent": "modelyard-client/0.1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(call.headers)
        return headers


class ProgressFile:
    """A file object that reports each chunk httpx reads from it (for upload progress)."""

    def __init__(self, path: Path, on_progress: ProgressCallback | None) -> None:
        self._file = path.open("rb")
        self._on_progress = on_progress

    def read(self, size: int = -1) -> bytes:
        """Return the next chunk (at least 1 MiB: httpx asks for 64 KiB) and report its size."""
        # Fewer, larger chunks: each costs Python time in httpx and h11, so 64 KiB chunks kept
        # an upload to about 60% of curl's speed on the same machine.
        chunk = self._file.read(size if size < 0 else max(size, UPLOAD_CHUNK_BYTES))
        if chunk and self._on_progress is not None:
            self._on_progress(len(chunk))
        return chunk

    def fileno(self) -> int:
        """Return the descriptor (httpx sizes the body with it)."""
        return self._file.fileno()

    def tell(self) -> int:
        """Return the position."""
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position."""
        return self._file.seek(offset, whence)

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def request_kwargs(
    call: Call[Any], endpoints: Endpoints
) -> tuple[dict[str, Any], ProgressFile | None]:
    """Return the keyword arguments of httpx's build_request for `call` (and its open upload)."""
    kwargs: dict[str, Any] = {
        "method": call.method,
        "url": endpoints.url(call.service, call.path),
        "headers": endpoints.headers(call),
        "params": dict(call.params) if call.params else None,
    }
    upload = None
    if call.upload is not None:
        upload = ProgressFile(call.upload.path, call.upload.on_progress)
        kwargs["data"] = dict(call.upload.fields)
        kwargs["files"] = {"file": (call.upload.filename, upload, call.upload.content_type)}
    elif call.json is not None:
        kwargs["json"] = call.json
    if call.open_ended:
        kwargs["timeout"] = httpx.Timeout(OPEN_ENDED_CONNECT_S, read=None, write=None, pool=None)
    return kwargs, upload


CHAT_CALL: Call[Any] = Call("POST", "gateway", "/v1/chat/completions", identity)


def chat_request(
    endpoints: Endpoints,
    group: str,
    messages: list[dict[str, Any]],
    *,
    key: str | None,
    params: Mapping[str, Any],
) -> tuple[str, dict[str, str], Any]:
    """Return the URL, headers (the client key as bearer) and body of a streamed chat."""
    headers = endpoints.headers(CHAT_CALL)
    key = key or endpoints.gateway_key
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {"model": group, "messages": messages, **params, "stream": True}
    return endpoints.url("gateway", CHAT_CALL.path), headers, body


def sse_delta(line: str) -> str | None:
    """Return the text a server-sent `data:` line of a chat stream adds ('' when none).

    Returns None at the end of the stream (`data: [DONE]`); raises StreamError for the error
    event the gateway sends when a backend fails mid-stream.
    """
    import json

    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    event = json.loads(data)
    if "error" in event:
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise StreamError(str(message))
    parts = []
    for choice in event.get("choices") or []:
        delta = choice.get("delta") or {}
        parts.append(str(delta.get("content") or choice.get("text") or ""))
    return "".join(parts)
