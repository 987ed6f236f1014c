"""Confirming a standing with the registry: the projection first, then the registry itself.

The deployer and the gateway judge from their projection, so the gate holds while the registry
is down. Two moments need the registry's own word: a model the projection has never heard of,
and a refusal about to be given (an approval made a moment ago may not have arrived yet). Both
services ask the same way, here: with the caller's token (the answer proves the model is in the
caller's workspace), through the service's one HTTP client, and with one answer for a model the
registry does not show the caller (a 422 naming the field that carried its id).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import WORKSPACE_HEADER
from modelyard_common.db import utcnow
from modelyard_common.errors import ServiceUnavailableError, UnprocessableError, invalid_field
from modelyard_common.governance.projection import Governance
from modelyard_common.governance.rules import Gate, ModelApprovalEvent, Standing

__all__ = [
    "RegistryConfirmation",
    "fetch_registry_model",
    "unknown_model",
]

log = logging.getLogger("modelyard.governance")


async def fetch_registry_model(
    http: httpx.AsyncClient, *, model_id: uuid.UUID, workspace: str, authorization: str | None
) -> dict[str, Any] | None:
    """Return the model as the registry shows it to the caller, or None when it has none.

    The caller's own token is passed on with the workspace they act in, so the answer proves the
    model is in that workspace (a token granting several workspaces needs the header: without
    it the registry refuses, and the model would read as unknown). Raises 503 when the registry
    cannot answer.
    """
    headers = {WORKSPACE_HEADER: workspace}
    if authorization:
        headers["Authorization"] = authorization
    response = await _get(http, f"/v1/models/{model_id}", headers=headers)
    if response.status_code in (403, 404):
        return None
    if response.status_code != 200:
        raise ServiceUnavailableError(f"The registry answered {response.status_code}.")
    try:
        body = response.json()
    except ValueError as exc:
        raise ServiceUnavailableError("The registry sent an unreadable model.") from exc
    if not isinstance(body, dict):
        raise ServiceUnavailableError("The registry sent an unreadable model.")
    return body


# What a pooled keep-alive connection the registry closed meanwhile looks like on reuse (the
# server hung up without an answer). A GET is safe to ask again: once, on a fresh connection.
_STALE_CONNECTION = (httpx.ReadError, httpx.RemoteProtocolError)


async def _get(http: httpx.AsyncClient, url: str, *, headers: dict[str, str]) -> httpx.Response:
    """GET `url` from the registry, once more after a stale connection; 503 if it cannot."""
    for attempt in (1, 2):
        try:
            return await http.get(url, headers=headers)
        except _STALE_CONNECTION as exc:
            if attempt == 2:
                raise ServiceUnavailableError(
                    f"The registry is unreachable ({type(exc).__name__})."
                ) from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(
                f"The registry is unreachable ({type(exc).__name__})."
            ) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def unknown_model(model_id: uuid.UUID, *, field: str) -> UnprocessableError:
    """Return the one answer for a model the registry does not show the caller."""
    return invalid_field(
        f"The registry has no model {model_id} in this workspace.",
        ["body", field],
        message="no such registry model",
        type="not_found",
    )


@dataclass(frozen=True, slots=True)
class RegistryConfirmation:
    """A service's projection, confirmed with the registry when it is silent or refuses.

    `http` is the service's one client of the registry (base URL and timeout set once, in the
    service's lifespan); it is shared by every request.
    """

    projection: Governance
    http: httpx.AsyncClient

    async def standing(
        self,
        session: AsyncSession,
        *,
        workspace: str,
        model_id: uuid.UUID,
        authorization: str | None,
        fresh: bool = False,
        field: str = "registry_model_id",
    ) -> Standing:
        """Return the model's standing: the projection's, or the registry's when it must be asked.

        The registry is asked (with the caller's token) when the projection never heard of the
        model, or when `fresh` (to confirm a refusal). If it cannot answer, the projection's view
        stands (the caller decides what an unknown approval means under its gate); if it does not
        show the caller the model, `unknown_model` is raised. What it says is recorded in the
        projection, so the next request needs no HTTP.
        """
        standing = await self.projection.standing(session, workspace=workspace, model_id=model_id)
        if (standing.approval is not None and not fresh) or standing.gate is Gate.off:
            return standing
        try:
            body = await fetch_registry_model(
                self.http, model_id=model_id, workspace=workspace, authorization=authorization
            )
        except ServiceUnavailableError as exc:
            log.warning("approval of model %s unconfirmed: %s", model_id, exc.detail)
            return standing
        if body is None:
            raise unknown_model(model_id, field=field)
        if body.get("approval") is None:
            return standing  # an answer without an approval confirms nothing
        try:
            model = ModelApprovalEvent.model_validate({**body, "workspace": workspace})
        except ValidationError:
            log.warning("the registry sent model %s without a readable approval", model_id)
            return standing
        await self.projection.record_model(session, model, source_time=utcnow())
        return await self.projection.standing(session, workspace=workspace, model_id=model_id)
