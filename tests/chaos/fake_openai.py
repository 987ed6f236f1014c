"""A fake OpenAI-compatible backend, run as its own process so chaos tests can kill -9 it.

`python fake_openai.py --port P --name N [--mode ok|hang] [--chunks 5] [--chunk-delay 0.02]`
answers `/v1/chat/completions` (JSON or SSE) and `/v1/models`; in `hang` mode it accepts
connections and never answers a completion (its health path still answers, like a wedged GPU
worker behind a live HTTP server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiohttp import web


def build(name: str, mode: str, chunks: int, chunk_delay: float) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if mode == "hang":
            await asyncio.sleep(3600)
        if not body.get("stream"):
            await asyncio.sleep(chunk_delay)
            return web.json_response(
                {
                    "id": "chatcmpl-chaos",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": f"hello from {name}"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(chunks):
            await asyncio.sleep(chunk_delay)
            chunk = {
                "id": "chatcmpl-chaos",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body.get("model"),
                "choices": [
                    {"index": 0, "delta": {"content": f"{name}{i} "}, "finish_reason": None}
                ],
            }
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": name, "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="fake")
    parser.add_argument("--mode", default="ok", choices=["ok", "hang"])
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--chunk-delay", type=float, default=0.02)
    args = parser.parse_args()
    web.run_app(
        build(args.name, args.mode, args.chunks, args.chunk_delay),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
