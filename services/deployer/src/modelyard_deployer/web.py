"""Small HTTP helpers shared by the deployer's routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse

from modelyard_common.http import StoredResponse

# The caller's own bearer token, forwarded to the registry so it answers as the caller.
AuthorizationHeader = Annotated[str | None, Header(alias="Authorization", include_in_schema=False)]


def created_response(stored: StoredResponse, *, location: str | None = None) -> JSONResponse:
    """Return the (first) response of an idempotent create, with ETag and Location if known."""
    headers: dict[str, str] = {}
    body: dict[str, Any] = stored.body
    if isinstance(body.get("etag"), str):
        headers["ETag"] = body["etag"]
    if location:
        headers["Location"] = location
    if stored.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=stored.status_code, headers=headers)
