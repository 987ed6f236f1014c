# Generated from aio.py by clients/python/scripts/generate_sync.py (unasync); do not edit.
# Change aio.py, then run: python clients/python/scripts/generate_sync.py
# An async generator cannot `yield from`, so neither can its generated twin:
# ruff: noqa: UP028
"""The synchronous client: `Modelyard(...).send(operations.get_model(id))`."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, BinaryIO, TypeVar

import httpx

from modelyard_client._core import (
    CHAT_CALL,
    Call,
    Endpoints,
    RetryPolicy,
    chat_request,
    error_of,
    request_kwargs,
    result_of,
    should_retry,
    sse_delta,
)
from modelyard_client._io_sync import pause, run_blocking
from modelyard_client.errors import TransportError
from modelyard_client.types import Page

T = TypeVar("T")


class Modelyard:
    """A client of the registry, the deployer and the gateway (one connection pool for all)."""

    def __init__(
        self,
        endpoints: Endpoints | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoints = endpoints or Endpoints()
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def __enter__(self) -> Modelyard:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def send(self, call: Call[T]) -> T:
        """Return the answer of `call`, retrying it when that is safe; raise ApiError."""
        attempt = 0
        while True:
            # Building the request opens the upload file, which blocks (async: in a thread).
            kwargs, upload = run_blocking(request_kwargs, call, self.endpoints)
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                request = self._http.build_request(**kwargs)
                response = self._http.send(request)
            except httpx.TransportError as exc:
                error = exc
            finally:
                if upload is not None:
                    upload.close()
            attempt += 1
            if attempt < self.retry.attempts and should_retry(call, response=response, error=error):
                pause(self.retry.delay(attempt - 1, response))
                continue
            if response is None:
                raise TransportError(f"{kwargs['url']}: {error}", url=str(kwargs["url"]))
            return result_of(call, response)

    def pages(self, call: Call[Page[T]]) -> Iterator[Page[T]]:
        """Yield every page of a list call, following `next_cursor`."""
        while True:
            page = self.send(call)
            yield page
            if not page.get("next_cursor"):
                return
            call = call.with_params(cursor=page["next_cursor"])

    def iterate(self, call: Call[Page[T]]) -> Iterator[T]:
        """Yield every item of a list call, page after page."""
        for page in self.pages(call):
            for item in page["items"]:
                yield item

    def stream_bytes(self, call: Call[Any]) -> Iterator[bytes]:
        """Yield the body of `call`'s answer as it arrives (exports); raise ApiError on errors."""
        kwargs, upload = run_blocking(request_kwargs, call, self.endpoints)
        if upload is not None:
            upload.close()
            raise ValueError("stream_bytes sends no uploads")
        request = self._http.build_request(**kwargs)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise TransportError(f"{kwargs['url']}: {exc}", url=str(kwargs["url"])) from exc
        try:
            if response.status_code >= 400:
                response.read()
                raise error_of(call, response)
            for chunk in response.iter_bytes():
                yield chunk
        except httpx.TransportError as exc:
            raise TransportError(f"{kwargs['url']}: {exc}", url=str(kwargs["url"])) from exc
        finally:
            response.close()

    def download(self, call: Call[Any], target: BinaryIO) -> int:
        """Write the body of `call`'s answer to `target` as it arrives; return the bytes written."""
        written = 0
        for chunk in self.stream_bytes(call):
            run_blocking(target.write, chunk)  # a file write blocks: not on the loop
            written += len(chunk)
        return written

    def chat_stream(
        self,
        group: str,
        messages: list[dict[str, Any]],
        *,
        key: str | None = None,
        **params: Any,
    ) -> Iterator[str]:
        """Yield the text of a chat completion as the gateway streams it."""
        url, headers, body = chat_request(self.endpoints, group, messages, key=key, params=params)
        try:
            with self._http.stream("POST", url, json=body, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_of(CHAT_CALL, response)
                for line in response.iter_lines():
                    delta = sse_delta(line)
                    if delta is None:
                        return
                    if delta:
                        yield delta
        except httpx.TransportError as exc:
            raise TransportError(f"{url}: {exc}", url=url) from exc
