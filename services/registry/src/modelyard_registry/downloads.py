"""The answer of every download: the file's content, its media type and the name to save it as."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Response

from modelyard_common.http import attachment


def download(
    content: bytes | str,
    *,
    media_type: str,
    filename: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Return `content` as a file the client saves as `filename`, with any further `headers`."""
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": attachment(filename), **(headers or {})},
    )
