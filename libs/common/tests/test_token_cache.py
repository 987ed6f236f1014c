"""Verified bearer tokens are kept for a while, never past `exp`, and refusals never."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from modelyard_common.auth import DEV_MAPPING, TokenVerifier, VerifiedTokens, issue_token
from modelyard_common.errors import ForbiddenError, UnauthorizedError
from modelyard_common.settings import DEV_JWT_SECRET, ServiceSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_is_kept_until_the_period_ends_or_it_expires() -> None:
    clock = Clock()
    kept = VerifiedTokens(60, clock=clock)
    kept.put("long", {"sub": "a", "exp": clock.now + 3600}, DEV_MAPPING)
    kept.put("short", {"sub": "b", "exp": clock.now + 10}, DEV_MAPPING)
    assert kept.get("long") == ({"sub": "a", "exp": clock.now + 3600}, DEV_MAPPING)
    clock.now += 9.9
    assert kept.get("short") is not None
    clock.now += 0.1  # at `exp`
    assert kept.get("short") is None
    assert kept.get("long") is not None
    clock.now += 50  # 60 s after it was verified
    assert kept.get("long") is None
    assert len(kept) == 0


@pytest.mark.parametrize("exp", [None, "soon", True, 999_999.0])
def test_a_token_without_a_future_numeric_exp_is_not_kept(exp: Any) -> None:
    clock = Clock()
    kept = VerifiedTokens(60, clock=clock)
    claims = {"sub": "a"} if exp is None else {"sub": "a", "exp": exp}
    kept.put("t", claims, DEV_MAPPING)
    assert kept.get("t") is None
    assert len(kept) == 0


def test_zero_keeps_nothing_and_the_oldest_go_first_when_full() -> None:
    clock = Clock()
    off = VerifiedTokens(0, clock=clock)
    off.put("t", {"sub": "a", "exp": clock.now + 60}, DEV_MAPPING)
    assert off.get("t") is None
    small = VerifiedTokens(60, size=3, clock=clock)
    for i in range(5):
        small.put(f"t{i}", {"sub": str(i), "exp": clock.now + 60}, DEV_MAPPING)
    assert len(small) == 3
    assert [small.get(f"t{i}") is not None for i in range(5)] == [False, False, True, True, True]
    small.clear()
    assert len(small) == 0


class CountingVerifier(TokenVerifier):
    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self.checked = 0

    async def _verify(self, token: str) -> Any:
        self.checked += 1
        return await super()._verify(token)


def _dev(**overrides: Any) -> ServiceSettings:
    return ServiceSettings(env="dev", jwt_secret=DEV_JWT_SECRET, **overrides)


async def test_a_token_is_verified_once_per_period_and_still_maps_each_workspace() -> None:
    verifier = CountingVerifier(_dev())
    token = issue_token(
        secret=DEV_JWT_SECRET,
        sub="ann",
        roles=["ws-b:admin"],
        workspace="ws-a",
        workspaces=["ws-a", "ws-b"],
    )
    for _ in range(50):
        a = await verifier.principal(token, requested_workspace="ws-a")
        b = await verifier.principal(token, requested_workspace="ws-b")
        assert (a.workspace, a.roles, b.workspace, b.roles) == (
            "ws-a",
            frozenset(),
            "ws-b",
            frozenset({"admin"}),
        )
        with pytest.raises(ForbiddenError):
            await verifier.principal(token, requested_workspace="ws-c")
    assert verifier.checked == 1

    every_time = CountingVerifier(_dev(token_cache_s=0))
    for _ in range(5):
        await every_time.principal(token, requested_workspace="ws-a")
    assert every_time.checked == 5


async def test_a_refused_token_is_checked_and_refused_every_time() -> None:
    verifier = CountingVerifier(_dev())
    forged = issue_token(secret="x" * 32, sub="mallory", roles=["admin"], workspace="ws-a")
    expired = issue_token(
        secret=DEV_JWT_SECRET,
        sub="old",
        roles=["admin"],
        workspace="ws-a",
        ttl=timedelta(seconds=-1),
    )
    for _ in range(3):
        for bad in (forged, expired, "not-a-jwt"):
            with pytest.raises(UnauthorizedError):
                await verifier.principal(bad, requested_workspace=None)
    assert verifier.checked == 9
    assert len(verifier.verified) == 0
