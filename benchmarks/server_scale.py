"""How server cost scales: with the namespace's size, and with the input's size (its limits).

Flat with size: the server-cost table (every SERVER_OP beside the no-op, interleaved) in one
namespace at a small and a large number of live threads; each op's ratio to the no-op at the
large size over its ratio at the small one. Worst case: single calls at the input limits
(MAX_HOPS hops of MAX_HOP_BYTES bytes), each call's own EVALSHA µs from commandstats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis

from registry.keys import namespace_keys
from registry.validation import MAX_HOP_BYTES, MAX_HOPS

from . import contenders as C
from .loads import build_fixture, op_caller
from .memory import fill_ours
from .server_cost import NOOP, SERVER_OPS, measure_rounds, run_counted, summarize


def _live(client: redis.Redis, reg: Any) -> int:
    return int(client.hlen(namespace_keys(reg.namespace)[1]))


def flat_with_size(
    client: redis.Redis, tag: str, sizes: Sequence[int], calls: int, rounds: int
) -> dict[str, Any]:
    """{"sizes": {size: server-cost summary + threads}, "growth": {op: ratio at max / ratio at min}}."""
    reg: Any = C.make("ours", client, f"flat-{tag}")
    floor = C.make("floor", client, f"flat-{tag}")
    fx = build_fixture(reg, 100, "")
    ffx = build_fixture(floor, 1, "")
    made = 0
    out: dict[str, Any] = {}
    try:
        for size in sorted(sizes):
            live = _live(client, reg)
            if live < size:
                fill_ours(reg, fx.router_id, made, made + size - live)
                made += size - live
            fns: dict[str, Callable[[int], Any]] = {op: op_caller(op, reg, fx, f"s{size}n") for op in SERVER_OPS}
            fns[NOOP] = op_caller("extend_chain_new", floor, ffx, "n")
            for fn in fns.values():
                fn(-1)
            before = _live(client, reg)
            row = summarize(measure_rounds(client, fns, calls, rounds))
            row["threads_before"], row["threads_after"] = before, _live(client, reg)
            out[str(size)] = row
    finally:
        reg.clear()
    small, big = out[str(min(sizes))]["ops"], out[str(max(sizes))]["ops"]
    growth = {op: round(big[op]["ratio"] / small[op]["ratio"], 2) for op in small if small[op]["ratio"]}
    return {"calls": calls, "rounds": rounds, "sizes": out, "growth": growth}


def limit_hops(k: int, hops: int = MAX_HOPS) -> list[str]:
    """The k-th chain at the limits: `hops` hops of MAX_HOP_BYTES bytes each, unlike other k's."""
    return [f"{k}-{j}-".ljust(MAX_HOP_BYTES, "x") for j in range(hops)]


def _one_call_us(client: redis.Redis, fn: Callable[[], Any]) -> float:
    d = run_counted(client, lambda _: fn(), 0, 1)
    return float(d.get("evalsha", (0, 0))[1])


def worst_case(client: redis.Redis, tag: str, calls: int) -> dict[str, Any]:
    """Server µs of single calls at the input limits: {case: {us_max, us_median, us_calls}}.

    get_or_create of a new MAX_HOPS-hop chain, the same chain again (existing), and extend_chain
    from a thread at depth MAX_HOPS - 1 to a new MAX_HOP_BYTES-byte hop.
    """
    reg: Any = C.make("ours", client, f"worst-{tag}")
    reg.extend_chain(reg.get_or_create(["warm"]), "warm")  # both scripts loaded before timing
    cases: dict[str, list[float]] = {"get_or_create_new": [], "get_or_create_existing": [], "extend_chain_at_255": []}
    try:
        for k in range(calls):
            hops = limit_hops(k)
            cases["get_or_create_new"].append(_one_call_us(client, lambda: reg.get_or_create(hops)))
            cases["get_or_create_existing"].append(_one_call_us(client, lambda: reg.get_or_create(hops)))
            parent = reg.get_or_create(hops[: MAX_HOPS - 1])
            hop = f"{k}-extend-".ljust(MAX_HOP_BYTES, "y")
            cases["extend_chain_at_255"].append(_one_call_us(client, lambda: reg.extend_chain(parent, hop)))
    finally:
        reg.clear()
    return {
        "hops": MAX_HOPS,
        "hop_bytes": MAX_HOP_BYTES,
        "cases": {
            name: {"us_max": max(us), "us_median": sorted(us)[len(us) // 2], "us_calls": us}
            for name, us in cases.items()
        },
    }
