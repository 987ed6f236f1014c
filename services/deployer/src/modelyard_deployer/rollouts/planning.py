"""Which devices go in which wave: the canary first, then counts or percentages."""

from __future__ import annotations

import math
from collections.abc import Sequence

from modelyard_common.errors import UnprocessableError, field_error
from modelyard_deployer.db import Device
from modelyard_deployer.rollouts.schemas import Wave


def plan_waves(targets: Sequence[Device], waves: Sequence[Wave]) -> list[list[Device]]:
    """Return the targets split into waves (empty waves dropped; leftovers join the last).

    A percentage is of all targets, rounded up; a wave by selector takes every target left whose
    labels match it (422 if none does).
    """
    remaining = list(targets)
    total = len(remaining)
    planned: list[list[Device]] = []
    for index, wave in enumerate(waves):
        if wave.selector is not None:
            selector = wave.selector
            chosen = [
                d for d in remaining if all(d.labels.get(k) == v for k, v in selector.items())
            ]
            if not chosen:
                raise UnprocessableError(
                    "A wave's selector matches none of the target devices left.",
                    errors=[
                        field_error(
                            ["body", "waves", index, "selector"],
                            message="matches no target device",
                            type="no_match",
                        )
                    ],
                )
        else:
            if wave.count is not None:
                size = wave.count
            else:
                size = max(1, math.ceil((wave.percent or 0) * total / 100))
            chosen = remaining[:size]
        taken = {d.id for d in chosen}
        remaining = [d for d in remaining if d.id not in taken]
        if chosen:
            planned.append(chosen)
    if remaining:
        if planned:
            planned[-1].extend(remaining)
        else:
            planned.append(remaining)
    return planned
