"""Flat with size: server µs per operation in a small and a large namespace, interleaved.

Two namespaces on one server, one filled to each size. Each round measures every operation
(and the no-op) in both, back to back, the sizes' order alternating by round; an operation's
growth is the median over rounds of (µs in the large one) / (µs in the small one). Measured
side by side like that, a change in the machine's load between phases cancels out, which a
ratio of two phases' figures (or of each to a no-op measured apart) does not.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

import redis

from registry.keys import namespace_keys

from .server_cost import OPS, Fixture, _fill, measure_op


def _live(fx: Fixture) -> int:
    return int(fx.client.hlen(namespace_keys(fx.reg.namespace)[1]))


def flat_with_size(
    client_factory: Callable[[], redis.Redis],
    tag: str,
    sizes: Sequence[int] = (1000, 200_000),
    ops: Sequence[str] = OPS,
    calls: int = 300,
    rounds: int = 3,
) -> dict[str, Any]:
    """{"sizes": {size: {op: median µs}, threads_before/after}, "growth": {op: large / small}}."""
    client = client_factory()
    small, large = min(sizes), max(sizes)
    fxs = {size: Fixture(client, f"flat-{tag}-{size}") for size in (small, large)}
    try:
        for size, fx in fxs.items():
            _fill(fx.reg, fx.router, 0, max(0, size - _live(fx)))
        before = {size: _live(fx) for size, fx in fxs.items()}
        names = ["noop", *ops]
        samples: dict[int, dict[str, list[float]]] = {size: {op: [] for op in names} for size in fxs}
        for r in range(rounds):
            for op in names:
                for size in (small, large) if r % 2 == 0 else (large, small):
                    samples[size][op].append(measure_op(fxs[size], op, calls))
        after = {size: _live(fx) for size, fx in fxs.items()}
    finally:
        for fx in fxs.values():
            fx.reg.clear()
        client.close()
    growth = {
        op: round(
            statistics.median(b / a for a, b in zip(samples[small][op], samples[large][op], strict=True)), 2
        )
        for op in names
    }
    return {
        "calls": calls,
        "rounds": rounds,
        "sizes": {
            str(size): {
                "threads_before": before[size],
                "threads_after": after[size],
                "us": {op: round(statistics.median(v), 2) for op, v in samples[size].items()},
            }
            for size in (small, large)
        },
        "growth": growth,
    }
