"""The compose smoke story, walked against the published ports (stdlib only, no venv needed).

Run by `scripts/compose.sh smoke`: every service healthy and ready; a model in the registry read
back; the compose agent's device online; a version of an OpenAI-protocol project uploaded and
deployed to it; a gateway group bound to the registry model; one chat completion through the
gateway, answered by the deployed container. Exits non-zero, saying which step failed.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Any

PROJECTS = Path(__file__).parent / "projects"


class StepFailed(Exception):
    """A step of the story did not behave as documented."""


def project_zip(name: str) -> bytes:
    """Return the zip of a project under tests/projects."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((PROJECTS / name).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(PROJECTS / name).as_posix())
    return buffer.getvalue()


def call(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
    timeout: float = 30,
) -> tuple[int, dict[str, str], Any]:
    """Return (status, headers, parsed JSON body or text) of one HTTP call; errors included."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, answer, text = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, answer, text = exc.code, dict(exc.headers), exc.read()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text.decode("utf-8", "replace")
    return status, {k.lower(): v for k, v in answer.items()}, parsed


def expect(status: int, wanted: int, what: str, body: Any) -> None:
    """Fail the step unless the status is the documented one."""
    if status != wanted:
        raise StepFailed(f"{what}: expected {wanted}, got {status}: {body}")


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """Return a multipart/form-data body and its content type."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    for name, (filename, content) in files.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/zip\r\n\r\n'.encode()
        )
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def poll(what: str, probe: Any, timeout: float, interval: float = 1.0) -> Any:
    """Return the first truthy result of `probe()`; fail the step after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise StepFailed(f"{what}: not within {timeout:g}s (last: {last})")


def story(args: argparse.Namespace) -> str:
    """Walk the story; return a one-line summary."""
    token = args.token
    suffix = uuid.uuid4().hex[:8]

    for name, base in (("registry", args.registry), ("deployer", args.deployer)):
        for path in ("/healthz", "/readyz"):
            status, _, body = call("GET", base + path)
            expect(status, 200, f"{name} {path}", body)
    for path in ("/healthz", "/readyz"):
        status, _, body = call("GET", args.gateway + path)
        expect(status, 200, f"gateway {path}", body)
    status, _, body = call("GET", args.agent + "/healthz")
    expect(status, 200, "agent /healthz", body)

    # registry round trip
    status, _, model = call(
        "POST",
        f"{args.registry}/v1/models",
        token=token,
        body={
            "name": f"smoke-chat-{suffix}",
            "learning_type": "supervised",
            "functionality": "chat",
            "foundations": "transformer",
            "description": "The compose smoke test's echo model.",
        },
    )
    expect(status, 201, "create registry model", model)
    status, _, read = call("GET", f"{args.registry}/v1/models/{model['id']}", token=token)
    expect(status, 200, "read registry model", read)
    if read["name"] != model["name"]:
        raise StepFailed(f"registry returned {read['name']!r}, stored {model['name']!r}")
    # under the default gate (enforce) the model must be approved, by someone else
    approval = f"{args.registry}/v1/models/{model['id']}/approval"
    status, _, body = call("POST", f"{approval}/request", token=token, body={"comment": "smoke"})
    expect(status, 200, "request review", body)
    status, _, body = call(
        "POST",
        f"{approval}/decision",
        token=args.approver_token,
        body={"decision": "approved", "comment": "smoke"},
    )
    expect(status, 200, "approve model", body)

    # the device the compose bootstrap registered, online once its agent sent a heartbeat
    def online_device() -> dict[str, Any] | None:
        status, _, page = call(
            "GET", f"{args.deployer}/v1/devices?label=compose=true&status=online", token=token
        )
        expect(status, 200, "list devices", page)
        return page["items"][0] if page["items"] else None

    device = poll("the compose agent's device online", online_device, timeout=60)

    # a gateway group bound to the registry model, and a client key for it
    group_name = f"smoke-chat-{suffix}"
    status, _, group = call(
        "POST",
        f"{args.gateway}/v1/groups",
        token=token,
        body={"name": group_name, "registry_model_id": model["id"]},
    )
    expect(status, 201, "create gateway group", group)
    status, _, key = call(
        "POST",
        f"{args.gateway}/v1/keys",
        token=token,
        body={"name": group_name, "groups": [group_name]},
    )
    expect(status, 201, "create gateway key", key)

    # upload a version of the OpenAI-protocol project, deploy it to the device
    manifest = {
        "image": args.model_image,
        "language": "python3",
        "main": "main.py",
        "port": 8080,
        "max_ram_mb": 128,
        "cores": 0.5,
        "health_path": "/healthz",
        "protocol": "openai",
        "env": {"REPLY_PREFIX": f"smoke-{suffix}"},
    }
    payload, content_type = multipart(
        {"manifest": json.dumps(manifest), "title": "smoke v1", "comment": "compose smoke"},
        {"file": ("openai_echo.zip", project_zip("openai_echo"))},
    )
    status, _, version = call(
        "POST",
        f"{args.deployer}/v1/models/{model['id']}/versions",
        token=token,
        raw=payload,
        content_type=content_type,
    )
    expect(status, 201, "upload version", version)
    status, _, batch = call(
        "POST",
        f"{args.deployer}/v1/deployments",
        token=token,
        body={"version_id": version["id"], "device_ids": [device["id"]]},
    )
    expect(status, 201, "create deployment", batch)
    deployment_id = batch["items"][0]["id"]

    def running() -> dict[str, Any] | None:
        status, _, deployment = call(
            "GET", f"{args.deployer}/v1/deployments/{deployment_id}", token=token
        )
        expect(status, 200, "read deployment", deployment)
        # A failure the agent retries says so; anything else is final.
        final = "retrying" not in deployment["state_message"]
        if deployment["state"] in ("failed", "rolled_back") and final:
            _, _, history = call(
                "GET", f"{args.deployer}/v1/deployments/{deployment_id}/history", token=token
            )
            raise StepFailed(f"deployment {deployment['state']}: {json.dumps(history)[:3000]}")
        return deployment if deployment["state"] == "running" else None

    poll("deployment running", running, timeout=180)

    # one chat completion through the gateway, served by the deployed container
    def completion() -> tuple[dict[str, str], Any] | None:
        status, headers, answer = call(
            "POST",
            f"{args.gateway}/v1/chat/completions",
            token=key["key"],
            body={"model": group_name, "messages": [{"role": "user", "content": "hello"}]},
        )
        return (headers, answer) if status == 200 else None

    headers, answer = poll("chat completion through the gateway", completion, timeout=60)
    content = answer["choices"][0]["message"]["content"]
    if content != f"smoke-{suffix}: hello":
        raise StepFailed(f"unexpected completion: {answer}")
    served_by = headers.get("x-modelyard-instance")
    if not served_by:
        raise StepFailed(f"the gateway did not say which instance answered: {headers}")
    return f"chat completion answered by {served_by} (deployment {deployment_id})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in (
        "registry",
        "deployer",
        "gateway",
        "agent",
        "token",
        "approver-token",
        "model-image",
    ):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    try:
        summary = story(args)
    except (StepFailed, OSError, KeyError, TypeError) as exc:
        print(f"smoke: FAILED: {exc!r}", file=sys.stderr)
        return 1
    print(f"smoke: ok: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
