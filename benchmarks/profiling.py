"""Where the time of one call of this library goes, from the Python side.

For each operation: wall time per call, the time spent building the Call in Python
(validation, uuid4, argument strings), the server time per EVALSHA (INFO commandstats delta;
includes the Lua work), and the rest (redis-py send/receive, socket, reply decoding). The
floor (d) gives the same split for a no-op script. For operations that miss a target, a
cProfile of the call path lists the functions where the time goes.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis

from . import contenders as C
from .loads import ROUTER, Fixture, build_fixture, op_caller


def _evalsha_stats(client: redis.Redis) -> tuple[int, int]:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


def _builder(reg: Any, op: str, fx: Fixture) -> Callable[[int], Any]:
    """Only the Python half of an operation: the Call it would send (nothing is sent)."""
    ops = reg._ops
    leaves, n = fx.leaf_ids, len(fx.leaf_ids)
    if op == "get_or_create_new":
        return lambda i: ops.get_or_create(f"{ROUTER}.prof{i}")
    if op == "get_or_create_existing":
        return lambda i: ops.get_or_create(fx.existing_chains[i % len(fx.existing_chains)])
    if op == "extend_chain_new":
        return lambda i: ops.extend_chain(fx.router_id, f"prof{i}")
    if op == "extend_chain_existing":
        return lambda i: ops.extend_chain(fx.router_id, fx.leaf_hops[i % len(fx.leaf_hops)])
    if op == "prune_for_response":
        return lambda i: ops.prune_for_response(leaves[i % n])
    if op == "register_thread":
        return lambda i: ops.register_thread(str(uuid.uuid4()), "console", f"prof{i}")
    return lambda i: ops.lookup(leaves[i % n])


def _per_call(fn: Callable[[int], Any], calls: int, offset: int = 0) -> float:
    t0 = time.perf_counter()
    for i in range(offset, offset + calls):
        fn(i)
    return (time.perf_counter() - t0) / calls


def breakdown(client: redis.Redis, tag: str, ops: Sequence[str], calls: int) -> dict[str, Any]:
    reg: Any = C.make("ours", client, f"prof-{tag}")
    floor = C.make("floor", client, f"prof-{tag}")
    fx = build_fixture(reg, 100, "")
    ffx = build_fixture(floor, 100, "")
    out: dict[str, Any] = {}
    for op in ops:
        row: dict[str, float] = {}
        for name, c, f in (("ours", reg, fx), ("floor", floor, ffx)):
            fn = op_caller(op, c, f, f"{name}b")
            c0, u0 = _evalsha_stats(client)
            wall = _per_call(fn, calls)
            c1, u1 = _evalsha_stats(client)
            row[f"{name}_wall_us"] = round(wall * 1e6, 1)
            row[f"{name}_server_us"] = round((u1 - u0) / max(1, c1 - c0), 1)
        row["ours_build_us"] = round(_per_call(_builder(reg, op, fx), calls) * 1e6, 1)
        row["ours_client_rest_us"] = round(
            row["ours_wall_us"] - row["ours_build_us"] - row["ours_server_us"], 1
        )
        row["floor_client_rest_us"] = round(row["floor_wall_us"] - row["floor_server_us"], 1)
        out[op] = row
    reg.clear()
    return out


def cprofile(client: redis.Redis, tag: str, op: str, calls: int, top: int = 14) -> list[str]:
    """cProfile of `calls` calls of one operation: the top functions by own time."""
    reg: Any = C.make("ours", client, f"cprof-{tag}")
    fx = build_fixture(reg, 100, "")
    fn = op_caller(op, reg, fx, "cprof")
    prof = cProfile.Profile()
    prof.enable()
    for i in range(calls):
        fn(i)
    prof.disable()
    reg.clear()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    lines = [ln.rstrip() for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return [ln.replace("/work/main/", "") for ln in lines[start:]]


def pyinstrument_text(client: redis.Redis, tag: str, op: str, calls: int) -> str:
    """A pyinstrument call tree of one operation (needs the `bench` extra)."""
    from pyinstrument import Profiler

    reg: Any = C.make("ours", client, f"pyi-{tag}")
    fx = build_fixture(reg, 100, "")
    fn = op_caller(op, reg, fx, "pyi")
    profiler = Profiler(interval=0.0001)
    profiler.start()
    for i in range(calls):
        fn(i)
    profiler.stop()
    reg.clear()
    text: str = profiler.output_text(unicode=False, color=False, show_all=False)
    return text
