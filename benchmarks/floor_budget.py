"""How much server time a call may take and still reach 0.85x of the no-op floor, on
this machine, beside what the library's writes and the least any write can do take.

The target "every operation >= 0.85x of the EVALSHA no-op floor with one client" is a
bound on wall time, and a call's wall time grows with its server time by more than the
server time itself on a small VM (a client that waits longer wakes up slower). This
measures that relation directly, in interleaved rounds on one throwaway server:

- the floor: ``return 1`` with the library's keys and a write's argument shapes, through
  redis-py's ``execute_command``; and the same no-op sent as the library sends a single
  call ("floor on pool");
- spin scripts that only count in a loop, at several lengths: server time alone, no
  effects; a straight line fitted through them and the floor (wall = a + b x server µs)
  gives the budget, the server µs at which a call falls to 0.85x of the floor;
- the write skeleton: TIME, one HMGET of the threads hash, the derived id (sha1hex and
  its UUID form), one HSET of a new mapping. No input checks, no claims, no expiry:
  less than any write that keeps the contract can do;
- the touch skeleton: TIME, the current thread, the derived id, one HMGET of the chain's
  mapping (nothing written): less than a touch of a fresh thread can do;
- the library's ``extend_chain`` to a new chain and to an existing one (sync client).

    python -m benchmarks.floor_budget [--url URL] [--rounds 7] [--calls 1500]

Prints per shape the median server µs, its ratio to the no-op, floor/ours (ops/s against
the floor in the same round), the same against "floor on pool" (the floor's no-op sent as
the library sends a single call: on a pooled connection, not through redis-py's
execute_command), and the budget.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

from registry import ThreadRegistry
from registry.operations import random_uuid
from registry.transport import send_on_pool

from .contenders import NOOP_SOURCE
from .env import redis_url

BAR = 0.85
TTL_S = 86400
SPINS = (250, 500, 1000, 2000, 3000)
# The least a write that binds a new chain does: the time, one read, the id, one write.
SKELETON_SOURCE = r"""
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local m = redis.call('HMGET', KEYS[2], ARGV[4], ARGV[2])
local v = m[1]
if not v or now < 0 then return false end
local chain = string.sub(v, 7) .. '\31' .. ARGV[5]
local h = redis.sha1hex(chain)
local d = string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-8' .. string.sub(h, 14, 16)
  .. '-8' .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
redis.call('HSET', KEYS[2], d, string.sub(v, 1, 6) .. chain)
return d
"""

# The least a touch that finds its thread fresh does: the time, the current thread, the
# id, and the chain's mapping and floor read (nothing written; the skeleton's id is
# unsalted, so the read misses: a hit would cost the same).
TOUCH_SOURCE = r"""
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local v = redis.call('HGET', KEYS[2], ARGV[4])
if not v or now < 0 then return false end
local chain = string.sub(v, 7) .. '\31' .. ARGV[5]
local h = redis.sha1hex(chain)
local d = string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-8' .. string.sub(h, 14, 16)
  .. '-8' .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
redis.call('HMGET', KEYS[2], d, '\0' .. d)
return d
"""


def _spin_source(n: int) -> str:
    return f"local x = 0 for i = 1, {n} do x = x + i end return 1"


def shapes(client: redis.Redis, reg: ThreadRegistry, router: str) -> dict[str, Callable[[int], Any]]:
    """Every measured shape as fn(i); the floor first. Each new chain gets a fresh hop."""
    keys = reg._ops.keys
    head = (str(TTL_S * 1000), "00000000-0000-4000-8000-000000000000", "0")
    noop = client.script_load(NOOP_SOURCE)
    skeleton = client.script_load(SKELETON_SOURCE)
    touch = client.script_load(TOUCH_SOURCE)
    counter = iter(range(10**12))

    def evalsha(sha: str, *args: str) -> Any:
        return client.execute_command("EVALSHA", sha, 3, *keys, *args)  # type: ignore[no-untyped-call]

    out: dict[str, Callable[[int], Any]] = {"floor": lambda i: evalsha(noop, *head, router, "hop-000000", "")}
    # The floor sent as the library sends a single call: on a pooled connection, not
    # through execute_command (docs/design.md, "The client's share of a call").
    out["floor on pool"] = lambda i: send_on_pool(
        client, ("EVALSHA", noop, 3, *keys, *head, router, "hop-000000", "")
    )
    for n in SPINS:
        sha = client.script_load(_spin_source(n))
        out[f"spin {n}"] = lambda i, sha=sha: evalsha(sha, *head, router, "hop-000000", "")
    out["write skeleton"] = lambda i: evalsha(
        skeleton, head[0], random_uuid(), "0", router, f"k{next(counter)}", ""
    )
    out["touch skeleton"] = lambda i: evalsha(touch, *head, router, "leaf", "")
    out["extend_chain_new"] = lambda i: reg.extend_chain(router, f"n{next(counter)}")
    out["extend_chain_existing"] = lambda i: reg.extend_chain(router, "leaf")
    return out


def measure(url: str, rounds: int, calls: int, namespace: str = "floor-budget") -> dict[str, Any]:
    """{"shapes": {name: medians}, "budget": fit} from `rounds` interleaved rounds."""
    client = redis.Redis.from_url(url)
    reg = ThreadRegistry(client, namespace=namespace, ttl=TTL_S)
    reg.clear()
    try:
        root = reg.initialize_root("acme")
        router = reg.extend_chain(reg.extend_chain(root, "console"), "router")
        for k in range(1000):  # a namespace in use: its hashes are hashtables
            reg.extend_chain(router, f"fill{k}")
        reg.extend_chain(router, "leaf")  # the chain the touches find
        fns = shapes(client, reg, router)
        names = list(fns)
        per_round: dict[str, list[tuple[float, float, float, float, float]]] = {n: [] for n in names}
        for rnd in range(rounds + 1):  # round 0 warms up
            took: dict[str, tuple[float, float]] = {}
            for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
                fn = fns[name]
                client.config_resetstat()
                start = time.perf_counter()
                for i in range(calls):
                    fn(i)
                wall = (time.perf_counter() - start) * 1e6 / calls
                stats = client.info("commandstats").get("cmdstat_evalsha", {})
                took[name] = (wall, float(stats.get("usec", 0)) / max(1, int(stats.get("calls", 1))))
            if rnd:
                fw, fs = took["floor"]
                pw = took["floor on pool"][0]
                for name, (wall, server) in took.items():
                    per_round[name].append((wall, server, server / fs, fw / wall, pw / wall))
    finally:
        reg.clear()
        client.close()
    med = {
        name: {
            "wall_us": round(statistics.median(r[0] for r in rows), 2),
            "server_us": round(statistics.median(r[1] for r in rows), 2),
            "x_noop": round(statistics.median(r[2] for r in rows), 2),
            "vs_floor": round(statistics.median(r[3] for r in rows), 3),
            "vs_floor_on_pool": round(statistics.median(r[4] for r in rows), 3),
        }
        for name, rows in per_round.items()
    }
    return {"rounds": rounds, "calls": calls, "bar": BAR, "shapes": med, "budget": budget(med)}


def budget(med: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """The least-squares line wall = a + b * server through the floor and the spins, and
    the server µs (and x the no-op) at which a call's wall reaches floor wall / BAR.
    None where the run's walls did not grow with server time (a noisy run: no budget)."""
    names = ("floor", *(f"spin {k}" for k in SPINS))
    xs, ys = [med[n]["server_us"] for n in names], [med[n]["wall_us"] for n in names]
    try:
        slope, a = statistics.linear_regression(xs, ys)
    except statistics.StatisticsError:  # (all spins at one server time)
        return {"slope_wall_per_server_us": None, "server_us": None, "x_noop": None}
    server = (med["floor"]["wall_us"] / BAR - a) / slope if slope > 0 else None
    noop = med["floor"]["server_us"]
    return {
        "slope_wall_per_server_us": round(slope, 2),
        "server_us": None if server is None else round(server, 2),
        "x_noop": None if server is None or not noop else round(server / noop, 2),
    }


def lines(result: dict[str, Any]) -> list[str]:
    """The table and the budget, as printed and as latest.md shows them."""
    out = [f"{'shape':<24} {'server µs':>9} {'x no-op':>8} {'floor/ours':>10} {'on pool':>8} {'wall µs':>8}"]
    for name, r in result["shapes"].items():
        cells = (
            f"{r['server_us']:>9.2f} {r['x_noop']:>8.2f} {r['vs_floor']:>10.3f} "
            f"{r['vs_floor_on_pool']:>8.3f} {r['wall_us']:>8.1f}"
        )
        out.append(f"{name:<24} {cells}")
    out.append("budget: " + budget_text(result))
    return out


def budget_text(result: dict[str, Any]) -> str:
    b = result["budget"]
    if b["server_us"] is None:
        return "no fit: the walls of this run did not grow with server time (noise); no budget"
    return (
        f"{result['bar']}x of the floor leaves a call {b['server_us']:.1f} server µs ({b['x_noop']:.1f}x "
        f"the no-op); the round trip grows {b['slope_wall_per_server_us']:.2f} µs per server µs"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.floor_budget", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", help="a Redis URL (default: a throwaway redis-server)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=1500)
    args = parser.parse_args(argv)
    with redis_url(args.url) as (url, _):
        result = measure(url, args.rounds, args.calls)
    print(f"{args.rounds} rounds x {args.calls} calls per shape, interleaved, 1 client")
    for line in lines(result):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
