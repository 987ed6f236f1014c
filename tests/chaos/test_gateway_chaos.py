"""The gateway under churn: 0 client errors while a backend can answer (issue 9, "Done means").

`MODELYARD_CHAOS_REQUESTS` sets the size (1,000 by default, the bounded CI run; `make chaos`
runs 5,000). Each scenario prints its table (shown with `pytest -s`, and by `make chaos`).
"""

from __future__ import annotations

import math
import os

import pytest
from chaoskit import print_table
from gateway_chaos import run_churn, run_hang

REQUESTS = int(os.environ.get("MODELYARD_CHAOS_REQUESTS", "1000"))
CONCURRENCY = 8


@pytest.mark.timeout(600)
async def test_backends_killed_and_restarted_under_load_cost_no_client_error() -> None:
    figures = await run_churn(REQUESTS, CONCURRENCY)
    print_table([figures.row()], "Gateway chaos: churn")
    assert figures.requests == REQUESTS
    assert figures.kills >= 5, "the churn never happened"
    # The only allowed failures are streams whose backend died after their first byte, and
    # each of those ends with an error event, never a silent cut.
    assert figures.plain_errors == 0, figures.error_codes
    assert figures.streams_failed_before_first_byte == 0, figures.error_codes
    assert figures.streams_cut_silently == 0
    assert figures.ok_plain == (REQUESTS + 1) // 2
    assert figures.ok_streams + figures.streams_cut_midway == REQUESTS // 2
    assert len(figures.served_by) == 3  # every backend served between its deaths


@pytest.mark.timeout(300)
async def test_a_hanging_backend_costs_one_first_byte_deadline_then_none() -> None:
    first_byte_s = 1.5
    requests = max(200, REQUESTS // 5)
    figures = await run_hang(requests, CONCURRENCY, first_byte_s)
    print_table([figures.row()], "Gateway chaos: hanging backend")
    assert figures.client_errors == 0, figures.error_codes
    # At most one first-byte deadline per request ...
    assert max(figures.latencies_ms) < 2 * first_byte_s * 1000 - 100
    # ... and, once cooled, none: the first concurrent burst pays, then one half-open trial
    # per cooldown (1 s doubling), so a handful in all.
    trials = math.ceil(math.log2(figures.seconds + 1)) + 1
    assert figures.slow <= CONCURRENCY + trials, (figures.slow, figures.seconds)
