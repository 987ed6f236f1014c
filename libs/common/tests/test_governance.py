"""The policy gate's judgements: every approval under every gate, for deploy, run, bind, serve."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from modelyard_common.errors import ServiceUnavailableError
from modelyard_common.governance import (
    ApprovalState,
    Conditions,
    Gate,
    Standing,
    fetch_registry_model,
    judge_bind,
    judge_deploy,
    judge_running,
    judge_serve,
)

A = ApprovalState
RESTRICTED = Conditions(
    text="Berlin, chat only", device_labels={"site": ["berlin"]}, gateway_groups=["chat"]
)

# approval -> (may deploy, may keep running, may bind, may serve), for a device/group that
# does not meet a restriction (site=paris, group "search").
TABLE = {
    A.draft: (False, True, False, True),
    A.in_review: (False, True, False, True),
    A.approved: (True, True, True, True),
    A.restricted: (False, False, False, False),
    A.blocked: (False, False, False, False),
    A.retired: (False, False, False, False),
    None: (False, True, False, True),
}


def standing(gate: Gate, approval: ApprovalState | None) -> Standing:
    conditions = RESTRICTED if approval is A.restricted else None
    return Standing(gate=gate, approval=approval, conditions=conditions, decided_by="bob")


@pytest.mark.parametrize("approval", list(TABLE))
@pytest.mark.parametrize("gate", list(Gate))
def test_each_approval_under_each_gate(gate: Gate, approval: ApprovalState | None) -> None:
    s = standing(gate, approval)
    labels = {"site": "paris"}
    verdicts = (
        judge_deploy(s, model="m", device="d", labels=labels),
        judge_running(s, model="m", device="d", labels=labels),
        judge_bind(s, model="m", group="search"),
        judge_serve(s, model="m", group="search"),
    )
    compliant = TABLE[approval]
    for verdict, ok in zip(verdicts, compliant, strict=True):
        if gate is Gate.off:
            assert (verdict.allowed, verdict.reason) == (True, None)
        elif gate is Gate.warn:
            assert verdict.allowed is True
            assert (verdict.warning is None) == ok
        else:
            assert verdict.allowed is ok
            assert (verdict.reason is None) == ok


def test_a_restriction_met_allows_and_says_why_when_not() -> None:
    s = standing(Gate.enforce, A.restricted)
    assert judge_deploy(s, model="m", device="d", labels={"site": "berlin"}).allowed
    assert judge_serve(s, model="m", group="chat").allowed
    refused = judge_deploy(s, model="m", device="paris-1", labels={})
    assert refused.reason == (
        "Model m is restricted to devices with site in (berlin); device paris-1 does not qualify."
    )
    assert refused.problem_fields() == {"approval": "restricted", "gate": "enforce"}


def test_reasons_name_the_decider_and_comment() -> None:
    s = Standing(gate=Gate.enforce, approval=A.blocked, decided_by="bob", comment="bias")
    assert judge_serve(s, model="m", group="g").reason == (
        "Model m is blocked (by bob: bias); it may not be served."
    )
    unknown = Standing(gate=Gate.enforce, approval=None)
    verdict = judge_deploy(unknown, model="m", device="d", labels={})
    assert "unknown approval" in (verdict.reason or "")


class HangingUpRegistry:
    """A registry on loopback that hangs up on the first `drops` requests without an answer
    (as a keep-alive connection it closed meanwhile looks to a client), then answers."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(request)
        if len(self.requests) > self.drops:
            body = b'{"id": "m", "approval": "approved"}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_the_registry_is_asked_again_once_after_a_hang_up() -> None:
    model_id = uuid.uuid4()
    registry = HangingUpRegistry(drops=1)
    async with registry as url, httpx.AsyncClient(base_url=url) as http:
        body = await fetch_registry_model(
            http, model_id=model_id, workspace="acme", authorization="Bearer t"
        )
    assert body == {"id": "m", "approval": "approved"}
    assert len(registry.requests) == 2
    # Both asked in the caller's workspace, with the caller's token.
    for request in registry.requests:
        assert b"x-modelyard-workspace: acme" in request.lower()
        assert b"authorization: bearer t" in request.lower()


async def test_a_registry_that_keeps_hanging_up_is_a_503_after_two_tries() -> None:
    registry = HangingUpRegistry(drops=10)
    async with registry as url, httpx.AsyncClient(base_url=url) as http:
        with pytest.raises(ServiceUnavailableError):
            await fetch_registry_model(
                http, model_id=uuid.uuid4(), workspace="acme", authorization=None
            )
    assert len(registry.requests) == 2
