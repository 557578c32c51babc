"""Where the time of one call of this library goes: on the server, and from the Python side.

On the server (`server_breakdown`): the commands each operation's script ran. A script's
``redis.call`` is counted in INFO commandstats as its own command (``cmdstat_hget`` ...), and
EVALSHA's usec includes them; so the change of every counter around N calls of one operation
gives, per operation, the calls of each command and their µs, and the rest of EVALSHA's µs is
the Lua interpreter itself (argument handling, string work, the call bridge, the reply).

From the Python side, for each operation: wall time per call, the time spent building the Call in Python
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
from . import server_cost
from .loads import ROUTER, Fixture, build_fixture, op_caller

# Counters of the harness's own commands, not of the operation's script.
_OWN = ("evalsha", "info", "config", "script", "client", "hello", "ping")


def command_stats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """{command: (calls, usec)} from INFO commandstats (subcommands as "config|resetstat")."""
    return {
        key.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for key, v in client.info("commandstats").items()
    }


def inner_commands(client: redis.Redis, fn: Callable[[int], Any], calls: int) -> dict[str, Any]:
    """Where `calls` calls of fn(i) spend EVALSHA's server µs, per operation.

    inner: {command: {per_op, usec_per_call, us_per_op}}; lua_rest_us: EVALSHA µs minus the
    inner commands' µs.
    """
    before = command_stats(client)
    for i in range(calls):
        fn(i)
    after = command_stats(client)
    delta = {}
    for cmd, (n, usec) in after.items():
        n0, u0 = before.get(cmd, (0, 0))
        if n > n0:
            delta[cmd] = (n - n0, usec - u0)
    ev_calls, ev_usec = delta.get("evalsha", (0, 0))
    inner = {
        cmd: {
            "per_op": round(n / calls, 2),
            "usec_per_call": round(usec / n, 2),
            "us_per_op": round(usec / calls, 2),
        }
        for cmd, (n, usec) in sorted(delta.items(), key=lambda kv: -kv[1][1])
        if cmd.split("|")[0] not in _OWN
    }
    inner_us = sum(v["us_per_op"] for v in inner.values())
    return {
        "evalsha_per_op": round(ev_calls / calls, 2),
        "evalsha_us": round(ev_usec / calls, 2),
        "redis_calls_per_op": round(sum(v["per_op"] for v in inner.values()), 2),
        "inner_us": round(inner_us, 2),
        "lua_rest_us": round(ev_usec / calls - inner_us, 2),
        "inner": inner,
    }


def server_breakdown(client: redis.Redis, tag: str, ops: Sequence[str], calls: int) -> dict[str, Any]:
    """inner_commands of each operation (server_cost's callers) and of the no-op script."""
    fx = server_cost.Fixture(client, f"prof-server-{tag}")
    try:
        out = {}
        for op in [*ops, "noop"]:
            fn = fx.caller(op)
            fn(calls)  # the script loaded before counting
            out[op] = inner_commands(client, fn, calls)
        return out
    finally:
        fx.reg.clear()


def server_breakdown_text(rows: dict[str, Any]) -> str:
    """The breakdown as lines: per operation, EVALSHA µs, then each command's share."""
    lines = []
    for op, r in rows.items():
        lines.append(
            f"{op}: {r['evalsha_us']} µs per call on the server; {r['redis_calls_per_op']} redis.call "
            f"({r['inner_us']} µs), Lua and the rest {r['lua_rest_us']} µs"
        )
        for cmd, c in r["inner"].items():
            per, each, total = c["per_op"], c["usec_per_call"], c["us_per_op"]
            lines.append(f"    {cmd:<14} {per:>6} per call x {each:>7} µs = {total:>7} µs")
    return "\n".join(lines)


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
