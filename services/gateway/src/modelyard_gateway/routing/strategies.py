"""Routing strategies: the order in which one request tries a group's instances.

A strategy only orders; failover (skips for cooldown, down or capacity, the "tried anyway"
pass, the deadline) then walks that order unchanged. Everything here runs per request, from
memory, in a few microseconds: no database, no awaits, one short list at most.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

from modelyard_gateway.routing.catalog import (
    LATENCY,
    LEAST_BUSY,
    ORDERED,
    WEIGHTED,
    ClientKey,
    GroupRoute,
    InstanceRoute,
)
from modelyard_gateway.routing.health import HealthBoard

# `latency`: the share of requests that try a random instance first, so a backend that was
# slow once is measured again (others without a measurement go first anyway).
EXPLORE = 0.05
_MASK64 = (1 << 64) - 1
_UNIT = 1.0 / (1 << 53)

Headers = Sequence[tuple[bytes, bytes]]


def affinity_of(group: GroupRoute, key: ClientKey, headers: Headers) -> int | None:
    """Return the number a sticky group keeps one client on (None: not sticky for this one).

    Stable across replicas and restarts: the key's id, or a digest of the header's value.
    """
    if group.sticky_by == "key":
        return key.id.int & _MASK64
    if group.sticky_by == "header":
        for name, value in headers:
            if name == group.sticky_header and value:
                return int.from_bytes(hashlib.blake2b(value, digest_size=8).digest())
    return None


def attempt_order(
    group: GroupRoute, board: HealthBoard, affinity: int | None = None
) -> Sequence[InstanceRoute]:
    """Return the group's instances in the order this request tries them."""
    kind = group.strategy
    if kind == ORDERED or len(group.instances) < 2:
        return group.instances
    if kind == WEIGHTED:
        if not group.total_weight:
            return group.instances
        if affinity is not None:
            return _rendezvous(group, affinity)
        return _smooth_weighted(group)
    if kind == LEAST_BUSY:
        return _least_busy(group, board)
    if kind == LATENCY:
        return _fastest(group, board)
    return group.instances


def _smooth_weighted(group: GroupRoute) -> list[InstanceRoute]:
    """Smooth weighted round robin (as nginx does): each instance leads its exact share of
    every `total_weight` requests, spread out. The fallbacks follow in a random order drawn by
    weight, so a dead instance's share goes to the others in proportion; weight 0 last."""
    instances, weights, credit = group.instances, group.weights, group.rotation.credit
    best = -1
    for i, weight in enumerate(weights):
        if weight:
            credit[i] += weight
            if best < 0 or credit[i] > credit[best]:
                best = i
    credit[best] -= group.total_weight
    rest = [i for i in range(len(instances)) if i != best]
    if len(rest) > 1:
        rest.sort(key=lambda i: _draw(weights[i]))
    return [instances[best], *(instances[i] for i in rest)]


def _draw(weight: int) -> float:
    """Return a random arrival time at rate `weight`: sorting by it samples by weight."""
    return -math.log(1.0 - random.random()) / weight if weight else math.inf


def _rendezvous(group: GroupRoute, affinity: int) -> list[InstanceRoute]:
    """Weighted rendezvous hashing: a client's order depends only on it and the instances, so
    it keeps its first instance (and its fallbacks) while they stay; clients split by weight."""

    def score(i: int) -> float:
        weight = group.weights[i]
        if not weight:
            return math.inf
        x = (affinity ^ group.salts[i]) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
        return -math.log(((x >> 11) + 0.5) * _UNIT) / weight

    return [group.instances[i] for i in sorted(range(len(group.instances)), key=score)]


def _least_busy(group: GroupRoute, board: HealthBoard) -> list[InstanceRoute]:
    """Fewest requests in flight on this replica first; ties take turns."""
    instances = group.instances
    n = len(instances)
    rotation = group.rotation
    start = rotation.turn = (rotation.turn + 1) % n
    busy = [board.state(inst.id).in_flight for inst in instances]
    return [instances[i] for i in sorted(range(n), key=lambda i: (busy[i], (i - start) % n))]


def _fastest(group: GroupRoute, board: HealthBoard) -> list[InstanceRoute]:
    """Lowest recent time to first byte first; unmeasured instances before all others, and now
    and then a random one first."""
    instances = group.instances
    seen = [board.state(inst.id).ttfb for inst in instances]
    order = sorted(range(len(instances)), key=lambda i: (seen[i] > 0.0, seen[i]))
    if seen[order[0]] > 0.0 and random.random() < EXPLORE:
        order.insert(0, order.pop(random.randrange(1, len(order))))
    return [instances[i] for i in order]
