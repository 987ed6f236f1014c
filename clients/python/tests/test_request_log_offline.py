"""The request log from the SDK and the CLI, against a local HTTP server speaking the gateway's
`/v1/requests` API: filters become query parameters, pages are followed, exports stream to a file
or to stdout. (The gateway's own tests check the API against the real log.)
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from modelyard_client import ApiError, AsyncModelyard, Endpoints, Modelyard
from modelyard_client import operations as ops

CLI = str(Path(sys.executable).parent / "modelyard")
KEY_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def logged(n: int, status: int = 200) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "at": f"2026-12-06T15:{59 - n:02d}:00Z",
        "key_id": KEY_ID,
        "endpoint": "chat/completions",
        "group": "chat",
        "registry_model_id": None,
        "instances": ["local", "cloud"],
        "attempts": 2,
        "status": status,
        "error_cause": None if status < 400 else "http_5xx",
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
        "ttfb_ms": 10,
        "duration_ms": 20,
        "stream": False,
        "replica": "r1",
        "request_body": None,
        "response_body": None,
    }


ROWS = [logged(n) for n in range(5)]
CSV_LINES = [b"id,at,status\n"] + [f"{r['id']},{r['at']},200\n".encode() for r in ROWS]


class RequestLogApi(BaseHTTPRequestHandler):
    """`GET /v1/requests` in pages of 2 and `GET /v1/requests/export` in chunks."""

    seen: list[tuple[str, dict[str, list[str]]]] = []

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        self.seen.append((parts.path, query))
        if "status_class" in query and query["status_class"] != ["5xx"]:
            self._send(422, {"type": "about:blank", "title": "Unprocessable Content",
                             "status": 422, "detail": "bad status class"})  # fmt: skip
            return
        if parts.path == "/v1/requests":
            start = int(query.get("cursor", ["0"])[0])
            size = int(query.get("limit", ["50"])[0])
            items = ROWS[start : start + size]
            after = start + size
            self._send(
                200, {"items": items, "next_cursor": str(after) if after < len(ROWS) else None}
            )
        elif parts.path == "/v1/requests/export":
            jsonl = query.get("format") == ["jsonl"]
            self.send_response(200)
            self.send_header("content-type", "application/x-ndjson" if jsonl else "text/csv")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            chunks = [json.dumps(r).encode() + b"\n" for r in ROWS] if jsonl else CSV_LINES
            for chunk in chunks:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404, {"type": "about:blank", "title": "Not Found", "status": 404})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        kind = "application/json" if status < 400 else "application/problem+json"
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def gateway_url() -> Iterator[str]:
    RequestLogApi.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RequestLogApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_sdk_lists_pages_and_exports_the_request_log(gateway_url: str) -> None:
    endpoints = Endpoints(gateway_url=gateway_url, token="t")
    with Modelyard(endpoints) as my:
        call = ops.list_requests(group="chat", status_class="5xx", limit=2, since=None)
        items = list(my.iterate(call))
        assert [i["id"] for i in items] == [r["id"] for r in ROWS]
        asked = [q for path, q in RequestLogApi.seen if path == "/v1/requests"]
        assert len(asked) == 3  # 2 + 2 + 1
        assert all(q["group"] == ["chat"] and q["status_class"] == ["5xx"] for q in asked)
        assert all("since" not in q for q in asked)  # None filters are not sent

        target = io.BytesIO()
        written = my.download(ops.export_requests("csv", group="chat"), target)
        assert written == len(target.getvalue()) == sum(len(line) for line in CSV_LINES)
        assert target.getvalue().count(b"\n") == 1 + len(ROWS)
        path, query = RequestLogApi.seen[-1]
        assert path == "/v1/requests/export"
        assert (query["format"], query["group"]) == (["csv"], ["chat"])

        with pytest.raises(ApiError) as refused:
            list(my.stream_bytes(ops.export_requests("jsonl", status_class="6xx")))
        assert refused.value.status == 422

    async def exported() -> list[dict[str, Any]]:
        async with AsyncModelyard(endpoints) as my:
            body = b"".join([c async for c in my.stream_bytes(ops.export_requests("jsonl"))])
        return [json.loads(line) for line in body.splitlines()]

    assert [r["id"] for r in asyncio.run(exported())] == [r["id"] for r in ROWS]


def cli(*args: str, gateway_url: str, config: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env = {**clean, "MODELYARD_CONFIG": str(config), "MODELYARD_GATEWAY_URL": gateway_url}
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_cli_lists_filters_and_exports_requests(gateway_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    listed = cli(
        "gateway", "requests", "--status", "5xx", "--group", "chat", "--limit", "3", "-o", "json",
        gateway_url=gateway_url, config=config,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [r["id"] for r in ROWS[:3]]
    query = RequestLogApi.seen[0][1]
    assert (query["status_class"], query["group"]) == (["5xx"], ["chat"])

    table = cli("gateway", "requests", "--status", "503", gateway_url=gateway_url, config=config)
    assert table.returncode == 0, table.stderr
    assert "STATUS" in table.stdout
    assert "local > cloud" in table.stdout
    assert RequestLogApi.seen[-1][1]["status"] == ["503"]

    target = tmp_path / "december.jsonl"
    exported = cli(
        "gateway", "requests", "--export", str(target), "--since", "2026-12-01T00:00:00Z",
        gateway_url=gateway_url, config=config,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    lines = target.read_text().splitlines()
    assert len(lines) == len(ROWS)  # jsonl, from the file name
    assert json.loads(lines[0])["id"] == ROWS[0]["id"]
    path, query = RequestLogApi.seen[-1]
    assert (path, query["format"], query["since"]) == (
        "/v1/requests/export",
        ["jsonl"],
        ["2026-12-01T00:00:00Z"],
    )

    to_stdout = cli(
        "gateway", "requests", "--export", "-", "--format", "csv",
        gateway_url=gateway_url, config=config,
    )  # fmt: skip
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout.count("\n") == 1 + len(ROWS)

    bad = cli("gateway", "requests", "--status", "6xx", gateway_url=gateway_url, config=config)
    assert bad.returncode == 2
    assert "--status" in bad.stderr
