"""Streaming multipart reader: the zip goes straight to the artifact store, never into memory.

Starlette's own form parser spools files to a temporary file first, which would copy a 3 GB
upload twice; this reader feeds `python-multipart`'s push parser from `request.stream()` and
hands the `file` part's bytes to a staged artifact as they come: memoryviews of the received
chunks, not copies. The store hashes and writes them in a worker thread while the next chunks
arrive, with a bounded amount queued in between (backpressure on the client).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from modelyard_common.errors import (
    BadRequestError,
    FieldError,
    PayloadTooLargeError,
    UnprocessableError,
)
from modelyard_deployer.artifacts import ArtifactStore, StagedArtifact
from modelyard_deployer.artifacts.writing import Chunk

FILE_FIELD = "file"
# Form fields other than the file are small: the manifest has its own (larger) limit.
FIELD_LIMIT = 8 * 1024
MULTIPART_OVERHEAD = 1024 * 1024
# The rest of a refused body is never read: closing the connection tells the client to stop
# sending it (kept open, the server would have to read and drop every remaining byte).
_CLOSE = {"Connection": "close"}


@dataclass
class ReceivedUpload:
    """What a multipart upload carried: the staged zip and the small text fields."""

    artifact: StagedArtifact | None = None
    fields: dict[str, str] = field(default_factory=dict)


def _invalid(field_name: str, message: str, kind: str = "invalid") -> UnprocessableError:
    return UnprocessableError(
        message,
        errors=[FieldError(loc=["body", field_name], field=field_name, message=message, type=kind)],
    )


class _PartCollector:
    """Receives the parser's callbacks and queues what happened, to be handled asynchronously."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Chunk]] = []
        self._header_field = bytearray()
        self._header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    def _begin(self) -> None:
        self.headers = {}

    def _data(self, data: bytes, start: int, end: int) -> None:
        # `data` is always an immutable bytes object (the received chunk, or the parser's
        # boundary constant), so a view of it stays valid after the callback: no copy.
        self.events.append(("data", memoryview(data)[start:end]))

    def _end(self) -> None:
        self.events.append(("end", b""))

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self.headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition = self.headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self.events.append(("part", name.encode()))


def _feed(parser: MultipartParser, chunk: bytes | None) -> None:
    try:
        if chunk is None:
            parser.finalize()
        else:
            parser.write(chunk)
    except MultipartParseError as exc:
        raise _invalid("file", f"The multipart body is malformed ({exc}).") from exc


async def receive_upload(
    request: Request,
    *,
    store: ArtifactStore,
    key: str,
    max_bytes: int,
    field_limits: dict[str, int],
) -> ReceivedUpload:
    """Return the upload's zip, staged to become `key`, and its fields.

    On any error the staged bytes are removed.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise _invalid("file", "Send the version as multipart/form-data with a `file` part.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLargeError(
            f"The upload is larger than the limit of {max_bytes} bytes.", headers=_CLOSE
        )

    collector = _PartCollector()
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    upload = ReceivedUpload()
    current: str | None = None
    text = bytearray()
    try:
        async for chunk in request.stream():
            _feed(parser, chunk)
            for kind, payload in collector.events:
                if kind == "data" and current == FILE_FIELD:
                    assert upload.artifact is not None
                    if upload.artifact.size + len(payload) > max_bytes:
                        raise PayloadTooLargeError(
                            f"The zip is larger than the limit of {max_bytes} bytes.",
                            headers=_CLOSE,
                        )
                    await upload.artifact.write(payload)
                elif kind == "part":
                    current = bytes(payload).decode()
                    text.clear()
                    if current == FILE_FIELD:
                        if upload.artifact is not None:
                            raise _invalid("file", "Send exactly one `file` part.")
                        upload.artifact = await store.stage(key)
                elif kind == "data" and current is not None:
                    text += payload
                    if len(text) > field_limits.get(current, FIELD_LIMIT):
                        raise _invalid(current, f"The `{current}` field is too long.", "too_long")
                elif kind == "end" and current == FILE_FIELD:
                    current = None
                elif kind == "end" and current is not None:
                    try:
                        upload.fields[current] = text.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise _invalid(current, f"The `{current}` field is not UTF-8.") from exc
                    current = None
            collector.events.clear()
        _feed(parser, None)
        if upload.artifact is None:
            raise _invalid("file", "The `file` part (the zip) is missing.", "missing")
        await upload.artifact.flush()
    except BaseException as exc:
        if upload.artifact is not None:
            await upload.artifact.discard()
        if isinstance(exc, ClientDisconnect):
            # Nobody is left to read an answer, but a problem is logged as one, not as a crash.
            raise BadRequestError("The upload was cut off before the end of the body.") from exc
        raise
    return upload
