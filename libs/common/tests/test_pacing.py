"""The pacer: paced work one at a time and resting its due while busy, free while idle."""

from __future__ import annotations

import asyncio

import pytest

from modelyard_common import pacing
from modelyard_common.pacing import Pacer, Traffic

REAL_SLEEP = asyncio.sleep


async def run_pieces(pacer: Pacer, count: int) -> int:
    """Run `count` pieces at once through `pacer`; return how many ran at the same time."""
    inside = most = 0

    async def piece() -> None:
        nonlocal inside, most
        async with pacer.turn():
            inside += 1
            most = max(most, inside)
            await REAL_SLEEP(0.01)
            inside -= 1

    await asyncio.gather(*(piece() for _ in range(count)))
    return most


async def test_while_busy_pieces_run_one_at_a_time_and_rest_their_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rests: list[float] = []

    async def sleep(seconds: float) -> None:
        rests.append(seconds)
        await REAL_SLEEP(0)

    monkeypatch.setattr(pacing.asyncio, "sleep", sleep)
    pacer = Pacer(0.25, busy=lambda: True)
    most = await run_pieces(pacer, 6)
    monkeypatch.undo()
    assert most == 1
    assert pacer.paced == 6
    # Each piece's rest is 3x what it took (a quarter of the time working): at least 3 x 10 ms.
    pieces = [r for r in rests if r >= 0.0299]
    assert len(pieces) == 6


async def test_while_idle_pieces_run_together_unpaced() -> None:
    pacer = Pacer(0.05, busy=lambda: False)
    assert await run_pieces(pacer, 6) == 6
    assert pacer.paced == 0


def test_traffic_is_busy_within_its_window_only() -> None:
    traffic = Traffic(window_s=60)
    assert not traffic.busy()
    traffic.seen()
    assert traffic.busy()
    traffic.last -= 61
    assert not traffic.busy()


def test_a_share_outside_zero_to_one_is_refused() -> None:
    for share in (0, -1, 1.5):
        with pytest.raises(ValueError, match="share"):
            Pacer(share, busy=lambda: True)
