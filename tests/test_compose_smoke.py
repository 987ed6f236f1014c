"""`make up` works: the compose suite builds, starts healthy and answers the smoke story.

The suite is the session's `compose_suite` (its own compose project on free ports, `up` once and
shared with the README walkthrough test, `down -v` at the end); this test walks
`scripts/compose.sh story` (tests/smoke_story.py) against its published ports.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.compose]


@pytest.mark.timeout(1800)
async def test_compose_suite_comes_up_and_serves_a_deployed_model(compose_suite) -> None:
    code, output = await compose_suite.script("story", timeout=600)
    verdict = "\n".join(
        line for line in output.splitlines() if line.startswith(("smoke:", "compose:"))
    )
    assert code == 0, f"{verdict}\n...\n{output[-6000:]}"
    assert "smoke: ok: chat completion answered by deployment-" in output
