"""Downloads: how the OpenAPI document describes a file, and the answer that sends one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Response

from modelyard_common.http import attachment

# The OpenAPI schema of a file's bytes (a download's body, or an upload's).
BINARY = {"schema": {"type": "string", "format": "binary"}}


def download_responses(media_type: str) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI `responses` of a download route: its 200 is a file of `media_type`."""
    return {200: {"content": {media_type: BINARY}}}


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
