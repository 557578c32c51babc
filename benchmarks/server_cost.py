"""Server CPU per operation, from the server's own counters (INFO commandstats).

A namespace lives in one slot, so its operations run one at a time on one main thread: the
server µs one operation costs sets the namespace's ceiling (1e6 / µs operations per second).
Each figure is the change of ``cmdstat_evalsha`` usec around N calls of one operation, divided
by N (the same as CONFIG RESETSTAT, N calls, ``usec_per_call``, without wiping the counters of
a server we did not start). A ``return 1`` script (the floor contender) is measured in the same
rounds, the operations' order rotated each round: ratios to it are comparable across noisy
machines and across servers, absolute µs are not.

Commands a script runs with ``redis.call`` are counted in commandstats as their own
``cmdstat_<command>``; EVALSHA's usec includes them. `inner_profile` splits one operation's
EVALSHA time into those commands (calls per operation, µs each) and the rest (Lua itself).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from . import contenders as C
from .loads import Fixture, build_fixture, op_caller

# The operations of the server-cost targets, and the no-op script measured beside them.
SERVER_OPS = (
    "lookup",
    "extend_chain_new",
    "extend_chain_existing",
    "get_or_create_existing",
    "get_or_create_new",
    "prune_for_response",
    "register_thread",
)
NOOP = "noop"
# Counters that are the harness's own reading, not the operation's work.
_OWN = ("evalsha", "info", "config", "script", "client", "hello", "ping")

Caller = Callable[[int], Any]


def command_stats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """{command: (calls, usec)} from INFO commandstats (subcommands as "config|resetstat")."""
    out: dict[str, tuple[int, int]] = {}
    for key, v in client.info("commandstats").items():
        out[key.removeprefix("cmdstat_")] = (int(v["calls"]), int(v["usec"]))
    return out


def _delta(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    out = {}
    for cmd, (calls, usec) in after.items():
        c0, u0 = before.get(cmd, (0, 0))
        if calls > c0:
            out[cmd] = (calls - c0, usec - u0)
    return out


def run_counted(client: redis.Redis, fn: Caller, start: int, n: int) -> dict[str, tuple[int, int]]:
    """Calls fn(start) .. fn(start + n - 1); the commandstats they added, {command: (calls, usec)}."""
    before = command_stats(client)
    for i in range(start, start + n):
        fn(i)
    return _delta(before, command_stats(client))


def callers(
    client: redis.Redis, tag: str, ops: Sequence[str] = SERVER_OPS, pool: int = 100
) -> tuple[dict[str, Caller], Any]:
    """{op: fn(i)} of this library over a fresh fixture, plus NOOP; each already run once.

    Returns the callers and the registry (the caller clears it when done).
    """
    reg: Any = C.make("ours", client, f"sc-{tag}")
    floor = C.make("floor", client, f"sc-{tag}")
    fx: Fixture = build_fixture(reg, pool, "")
    out = {op: op_caller(op, reg, fx, "sc") for op in ops}
    out[NOOP] = op_caller("extend_chain_new", floor, build_fixture(floor, 1, ""), "sc")
    for fn in out.values():  # scripts loaded (no NOSCRIPT inside a measure); -1 is no round's index
        fn(-1)
    return out, reg


def measure_rounds(
    client: redis.Redis, fns: Mapping[str, Caller], calls: int, rounds: int = 1
) -> dict[str, list[float]]:
    """{op: [server µs per call, one per round]}; the ops' order rotated each round.

    Each op's index keeps counting across rounds, so a "new chain" op makes new chains in every
    round.
    """
    names = list(fns)
    out: dict[str, list[float]] = {op: [] for op in names}
    for r in range(rounds):
        for op in names[r % len(names) :] + names[: r % len(names)]:
            calls_usec = run_counted(client, fns[op], r * calls, calls).get("evalsha", (0, 0))
            out[op].append(calls_usec[1] / calls)
    return out


def measure(client: redis.Redis, fns: Mapping[str, Caller], calls: int, rounds: int = 1) -> dict[str, float]:
    """{op: server µs per call}, the median over rounds."""
    return {op: statistics.median(us) for op, us in measure_rounds(client, fns, calls, rounds).items()}


def summarize(per_round: dict[str, list[float]]) -> dict[str, Any]:
    """µs, ratio to the no-op (median of per-round ratios) and ceiling (1e6 / µs) per op."""
    noop = per_round[NOOP]
    ops: dict[str, Any] = {}
    for op, us in per_round.items():
        if op == NOOP:
            continue
        med = statistics.median(us)
        ratios = [a / b for a, b in zip(us, noop, strict=True) if b > 0]
        ops[op] = {
            "us": round(med, 2),
            "ratio": round(statistics.median(ratios), 2) if ratios else 0.0,
            "ceiling_ops_s": round(1e6 / med) if med > 0 else 0,
            "us_rounds": [round(x, 2) for x in us],
        }
    return {"noop_us": round(statistics.median(noop), 2), "noop_us_rounds": [round(x, 2) for x in noop], "ops": ops}


def server_cost(client: redis.Redis, tag: str, calls: int, rounds: int, pool: int = 100) -> dict[str, Any]:
    """The server-cost table of one server: every SERVER_OP beside the no-op, interleaved."""
    fns, reg = callers(client, tag, SERVER_OPS, pool)
    try:
        summary = summarize(measure_rounds(client, fns, calls, rounds))
    finally:
        reg.clear()
    version = client.info("server")
    return {
        "server": f"{'valkey' if 'valkey_version' in version else 'redis'} "
        f"{version.get('valkey_version') or version.get('redis_version')}",
        "calls": calls,
        "rounds": rounds,
        **summary,
    }


def inner_profile(client: redis.Redis, fn: Caller, calls: int, start: int = 0) -> dict[str, Any]:
    """Where one operation's EVALSHA µs go: the commands its script ran, per operation.

    inner: {command: {per_op: calls per operation, usec_per_call, us_per_op}}, their sum, and
    lua_rest_us: EVALSHA µs minus that sum (the Lua interpreter, argument handling, replies).
    """
    d = run_counted(client, fn, start, calls)
    ev_calls, ev_usec = d.get("evalsha", (0, 0))
    inner = {}
    for cmd, (n, usec) in sorted(d.items(), key=lambda kv: -kv[1][1]):
        if cmd.split("|")[0] in _OWN:
            continue
        inner[cmd] = {
            "per_op": round(n / calls, 2),
            "usec_per_call": round(usec / n, 2),
            "us_per_op": round(usec / calls, 2),
        }
    evalsha_us = ev_usec / calls
    inner_us = sum(v["us_per_op"] for v in inner.values())
    return {
        "evalsha_per_op": round(ev_calls / calls, 2),
        "evalsha_us": round(evalsha_us, 2),
        "redis_calls_per_op": round(sum(v["per_op"] for v in inner.values()), 2),
        "inner_us": round(inner_us, 2),
        "lua_rest_us": round(evalsha_us - inner_us, 2),
        "inner": inner,
    }


def inner_profiles(client: redis.Redis, tag: str, ops: Sequence[str], calls: int) -> dict[str, Any]:
    """inner_profile of each op (and the no-op), each over its own fresh fixture's callers."""
    fns, reg = callers(client, f"prof-{tag}", ops)
    try:
        return {op: inner_profile(client, fns[op], calls, start=10**6) for op in [*ops, NOOP]}
    finally:
        reg.clear()
