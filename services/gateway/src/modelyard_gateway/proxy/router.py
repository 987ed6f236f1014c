"""The OpenAI-compatible routes as OpenAPI documents them; browsers (CORS) are served here.

Clients without an `Origin` header never reach these: `ProxyFastPath` answers them first. Both
ways end in the same handlers (`ProxyEndpoints`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from modelyard_gateway.proxy.endpoints import ProxyEndpoints
from modelyard_gateway.proxy.schemas import (
    OPENAI_ERRORS,
    ModelList,
    ModelObject,
    PassThroughRequest,
)
from modelyard_gateway.proxy.wire import Receive, Scope, Send

router = APIRouter(prefix="/v1", tags=["openai"], responses=OPENAI_ERRORS)

_STREAM_DOC = " With `stream: true` the answer is server-sent events, relayed as they arrive."


class _DelegatedResponse(Response):
    """A response that lets the proxy's handlers answer the raw ASGI request."""

    def __init__(self, request: Request) -> None:
        super().__init__()
        self._endpoints: ProxyEndpoints = request.app.state.proxy_endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._endpoints(scope, receive, send)


def _request_body(example: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": PassThroughRequest.model_json_schema(),
                    "example": example,
                }
            },
        }
    }


def _relay(path: str, operation_id: str, summary: str, description: str, example: Any) -> None:
    """Document one relayed POST route (its body passes through to the upstream)."""

    async def relay(request: Request) -> Response:
        return _DelegatedResponse(request)

    router.post(
        path,
        operation_id=operation_id,
        summary=summary,
        description=description,
        response_model=dict[str, Any],
        openapi_extra=_request_body(example),
    )(relay)


_relay(
    "/chat/completions",
    "create_chat_completion",
    "Create a chat completion through the group's first available instance",
    "OpenAI's chat completions API; fields besides `model` pass through." + _STREAM_DOC,
    {"model": "chat", "messages": [{"role": "user", "content": "Hello"}]},
)
_relay(
    "/completions",
    "create_completion",
    "Create a text completion through the group's first available instance",
    "OpenAI's (legacy) completions API." + _STREAM_DOC,
    {"model": "chat", "prompt": "Once upon a time"},
)
_relay(
    "/embeddings",
    "create_embedding",
    "Create embeddings through the group's first available instance",
    "Relay an embeddings request to the first available instance.",
    {"model": "embed", "input": ["some text"]},
)


@router.get(
    "/models",
    operation_id="list_openai_models",
    summary="List the model groups this API key may use",
    response_model=ModelList,
)
async def list_openai_models(request: Request) -> Response:
    """Return the enabled model groups this key may use."""
    return _DelegatedResponse(request)


@router.get(
    "/models/{model_id:path}",
    operation_id="get_openai_model",
    summary="Get one model group this API key may use",
    response_model=ModelObject,
)
async def get_openai_model(request: Request, model_id: str) -> Response:
    """Return one model group this key may use."""
    return _DelegatedResponse(request)
