"""Server CPU per operation (INFO commandstats), as ratios to a no-op script in the same run.

One namespace lives in one cluster slot, so the server µs one operation costs is the
namespace's ceiling (1e6 / µs operations per second). For each operation: CONFIG RESETSTAT,
`calls` calls, then `usec_per_call` of `cmdstat_evalsha`; the no-op (`return 1`, the
library's keys and argument shapes) is measured the same way, and the rounds interleave
every operation, so machine noise falls on all alike. The median of the rounds is kept.

Also: the cost at 1,000 and at 200,000 threads (it must be flat), one call at the input
limits (32 hops in 2,048 bytes, the long hops first: the worst case; and each bounded
step at its largest count: a gc step and a write's sweep over expired entries with
overrides, pages of dump, check and stats over chains at the limits), and bytes per live
thread.

    python -m benchmarks.server_cost [--url URL] [--calls N] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis

from registry import ThreadRegistry
from registry.check import CHECK_PAGE
from registry.check import page_call as check_page_call
from registry.keys import namespace_keys
from registry.operations import DUMP_PAGE, GC_PASS_STEP, Call
from registry.scripts import script
from registry.stats import STATS_PAGE
from registry.stats import page_call as stats_page_call
from registry.transport import run_call_once
from registry.validation import MAX_CHAIN_BYTES, MAX_HOP_BYTES, MAX_HOPS

NOOP = "return 1"
TTL_S = 86400
ROUTER = ("system", "acme", "console", "router")
# The operations measured, each as the issue names it.
OPS = (
    "lookup",
    "extend_chain_new",
    "extend_chain_existing",
    "get_or_create_existing",
    "get_or_create_new",
    "prune_for_response",
    "register_thread",
)
# Targets: ratio to the no-op script measured in the same run.
TARGETS = {
    "lookup": 2.5,
    "extend_chain_new": 8.0,
    "extend_chain_existing": 8.0,
    "get_or_create_existing": 8.0,
    "prune_for_response": 8.0,
    "register_thread": 10.0,
    "get_or_create_new": 12.0,
}
POOL = 100
_ID = "00000000-0000-4000-8000-000000000000"


def evalsha_usec(client: redis.Redis) -> tuple[int, float]:
    """(calls, usec_per_call) of EVALSHA since the last CONFIG RESETSTAT."""
    row = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(row.get("calls", 0)), float(row.get("usec_per_call", 0.0))


class Fixture:
    """A namespace with a root, a router thread, and pools of chains and leaves."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.reg = ThreadRegistry(client, namespace=namespace, ttl=TTL_S)
        root = self.reg.initialize_root("acme")
        self.router = self.reg.extend_chain(self.reg.extend_chain(root, "console"), "router")
        self.chains = [(*ROUTER, f"pool{k}") for k in range(POOL)]
        self.leaves = [self.reg.get_or_create(list(c)) for c in self.chains]
        self.noop_sha = str(client.script_load(NOOP))
        self.keys = namespace_keys(namespace)
        self._n = 0

    def caller(self, op: str) -> Callable[[int], Any]:
        """fn(i): the i-th call of `op`; new chains are new across rounds too."""
        reg, leaves, chains = self.reg, self.leaves, self.chains
        self._n += 1
        tag = f"r{self._n}-"
        if op == "noop":
            keys, sha = self.keys, self.noop_sha
            head = (str(TTL_S * 1000), _ID, "0")
            return lambda i: self.client.execute_command("EVALSHA", sha, 3, *keys, *head, _ID)  # type: ignore[no-untyped-call]
        if op == "lookup":
            return lambda i: reg.lookup(leaves[i % POOL])
        if op == "extend_chain_new":
            return lambda i: reg.extend_chain(self.router, f"{tag}{i}")
        if op == "extend_chain_existing":
            return lambda i: reg.extend_chain(self.router, f"pool{i % POOL}")
        if op == "get_or_create_existing":
            return lambda i: reg.get_or_create(list(chains[i % POOL]))
        if op == "get_or_create_new":
            return lambda i: reg.get_or_create([*ROUTER, f"{tag}{i}"])
        if op == "prune_for_response":
            return lambda i: reg.prune_for_response(leaves[i % POOL])
        if op == "register_thread":
            return lambda i: reg.register_thread(str(uuid.uuid4()), "console", f"{tag}{i}")
        raise ValueError(f"unknown operation {op!r}")


def measure_op(fx: Fixture, op: str, calls: int) -> float:
    """Server µs per EVALSHA of `calls` calls of `op` (after a warm-up that loads the script)."""
    fn = fx.caller(op)
    for i in range(3):
        fn(calls + i)
    fx.client.config_resetstat()
    for i in range(calls):
        fn(i)
    n, usec = evalsha_usec(fx.client)
    assert n >= calls, f"{op}: {n} EVALSHA counted for {calls} calls"
    return usec


def server_cost(
    client_factory: Callable[[], redis.Redis],
    ops: Sequence[str] = OPS,
    calls: int = 2000,
    rounds: int = 3,
    namespace: str = "server-cost",
) -> dict[str, Any]:
    """{"noop_us", "ops": {op: {"us", "ratio", "target", "ceiling_ops_s", "rounds"}}}.

    The server must be otherwise idle (CONFIG RESETSTAT is called between operations).
    """
    client = client_factory()
    fx = Fixture(client, namespace)
    samples: dict[str, list[float]] = {op: [] for op in ("noop", *ops)}
    try:
        for r in range(rounds):
            order = ["noop", *ops]
            order = order[r % len(order) :] + order[: r % len(order)]
            for op in order:
                samples[op].append(measure_op(fx, op, calls))
    finally:
        fx.reg.clear()
        client.close()
    noop = statistics.median(samples["noop"])
    out: dict[str, Any] = {"noop_us": round(noop, 2), "noop_rounds": samples["noop"], "ops": {}}
    for op in ops:
        us = statistics.median(samples[op])
        out["ops"][op] = {
            "us": round(us, 2),
            "ratio": round(us / noop, 2),
            "target": TARGETS.get(op),
            "ceiling_ops_s": round(1e6 / us) if us else None,
            "rounds": samples[op],
        }
    return out


def _fill(reg: ThreadRegistry, router: str, start: int, stop: int, chunk: int = 1000) -> None:
    for lo in range(start, stop, chunk):
        b = reg.batch()
        for n in range(lo, min(stop, lo + chunk)):
            b.extend_chain(router, f"fill-{n}")
        b.execute()


def flatness(
    client_factory: Callable[[], redis.Redis],
    sizes: Sequence[int] = (1000, 200_000),
    ops: Sequence[str] = ("lookup", "extend_chain_existing", "get_or_create_new", "register_thread"),
    calls: int = 2000,
    rounds: int = 3,
) -> dict[str, Any]:
    """Server µs per op at each namespace size (threads), and the ratio of largest to smallest."""
    client = client_factory()
    fx = Fixture(client, "server-cost-size")
    made, rows = 0, {}
    try:
        for size in sorted(sizes):
            _fill(fx.reg, fx.router, made, size)
            made = size
            noop = statistics.median(measure_op(fx, "noop", calls) for _ in range(rounds))
            row = {"noop": noop}
            for op in ops:
                row[op] = statistics.median(measure_op(fx, op, calls) for _ in range(rounds))
            rows[str(size)] = {k: round(v, 2) for k, v in row.items()}
    finally:
        fx.reg.clear()
        client.close()
    small, large = rows[str(min(sizes))], rows[str(max(sizes))]
    return {
        "sizes": rows,
        "ratio_large_to_small": {op: round(large[op] / small[op], 2) for op in ops},
    }


def _one(client: redis.Redis, fn: Callable[[], Any]) -> float:
    client.config_resetstat()
    fn()
    n, usec = evalsha_usec(client)
    assert n >= 1
    return usec


def limit_chain(hops: int = MAX_HOPS, size: int = MAX_CHAIN_BYTES) -> list[str]:
    """The chain at the input limits that costs a walk over its ancestors the most.

    `hops` hops in `size` bytes (separators included), the long hops first: every prefix
    is then as long as the rules let it be, and a walk's work grows with the sum of the
    prefixes' lengths.
    """
    extra = size - (hops - 1) - hops  # bytes beyond one per hop
    out = []
    for i in range(hops):
        n = 1 + min(MAX_HOP_BYTES - 1, extra)
        extra -= n - 1
        out.append(chr(ord("a") + i % 26) * n)
    return out


def worst_case(
    client_factory: Callable[[], redis.Redis],
    hops: int = MAX_HOPS,
    size: int = MAX_CHAIN_BYTES,
    repeats: int = 3,
) -> dict[str, float]:
    """Server µs of one call at the input limits: `hops` hops in `size` bytes (limit_chain).

    Each case runs `repeats` times, in fresh namespaces; the median is reported (one
    call's µs is one sample of a noisy machine).
    """
    runs = [
        {**_worst_case_once(client_factory, limit_chain(hops, size), r), **_steps_once(client_factory, r)}
        for r in range(repeats)
    ]
    return {k: round(statistics.median(run[k] for run in runs), 1) for k in runs[0]}


# The most each bounded step may take (the scripts refuse more), as the worst case
# names them: a write's sweep and a gc step over expired entries that each carry an
# override (the costliest entry to reclaim), and pages over chains at the input limits.
SWEEP_CAP = GC_PASS_STEP  # the scripts' limit on a write's sweep count and a gc step


def _steps_once(client_factory: Callable[[], redis.Redis], run: int) -> dict[str, float]:
    client = client_factory()
    out: dict[str, float] = {}
    ns = f"server-cost-steps-{run}"
    reg = ThreadRegistry(client, namespace=ns, ttl=TTL_S)
    short = ThreadRegistry(client, namespace=ns, ttl=2)
    keys = namespace_keys(ns)
    try:
        root = reg.initialize_root("acme")
        # Chains at the limits: each adds its 25 short-hopped descendants of hop 8.
        chain = limit_chain()
        batch = reg.batch()
        for i in range(40):
            hops = list(chain)
            hops[7] = hops[7][:-4] + f"{i:04d}"
            batch.get_or_create(hops)
        batch.execute()
        out[f"dump page of {DUMP_PAGE}"] = _one(
            client, lambda: run_call_once(client, keys, reg._ops.dump_page("t", "0"))
        )
        out[f"check page of {CHECK_PAGE}"] = _one(
            client, lambda: run_call_once(client, keys, check_page_call("t", "0", CHECK_PAGE))
        )
        out[f"stats page of {STATS_PAGE}"] = _one(
            client, lambda: run_call_once(client, keys, stats_page_call("t", "0"))
        )
        # Expired entries with overrides (register_thread binds an id of its own), in a
        # namespace whose keys a day-long thread keeps: both sweeps reclaim all they see.
        batch = short.batch()
        for i in range(3 * SWEEP_CAP):
            batch.register_thread(str(uuid.uuid4()), "ingress", f"e{i}")
        batch.execute()
        time.sleep(2.1)
        gc = Call(script("gc"), (str(SWEEP_CAP), "0", str(SWEEP_CAP)), list, True)
        out[f"gc step of {SWEEP_CAP} expired"] = _one(client, lambda: run_call_once(client, keys, gc))
        write = reg._ops.extend_chain(root, "swept")
        write.args = (*write.args[:2], str(SWEEP_CAP), *write.args[3:])
        # A turn that takes its step, from the start of the hash: the fill's own turns
        # found nothing expired, and the sweep backed off (docs/design.md, "Sweeping on
        # the way"), so the measured write would otherwise skip its step.
        client.hdel(keys[0], "cur", "sk")
        entries = int(client.hlen(keys[1]))
        out[f"write sweeping {SWEEP_CAP} expired"] = _one(client, lambda: run_call_once(client, keys, write))
        assert int(client.hlen(keys[1])) < entries, "the measured write's sweep reclaimed nothing"
    finally:
        reg.clear()
        client.close()
    return out


def _worst_case_once(
    client_factory: Callable[[], redis.Redis], chain: list[str], run: int
) -> dict[str, float]:
    client = client_factory()
    out: dict[str, float] = {}
    short = ThreadRegistry(client, namespace=f"server-cost-worst-{run}", ttl=60)
    reg = ThreadRegistry(client, namespace=f"server-cost-worst-{run}", ttl=TTL_S)
    try:
        reg.lookup(_ID)  # loads the scripts, so no SCRIPT LOAD falls in a measured call
        out["get_or_create_new"] = _one(client, lambda: reg.get_or_create(chain))
        out["get_or_create_existing"] = _one(client, lambda: reg.get_or_create(chain))
        leaf = reg.get_or_create(chain)
        out["lookup"] = _one(client, lambda: reg.lookup(leaf))
        out["prune_for_response"] = _one(client, lambda: reg.prune_for_response(leaf))
        parent = reg.get_or_create(chain[:-1])
        last = "#" * len(chain[-1])  # another last hop of the same length: a new chain
        out["extend_chain_new"] = _one(client, lambda: reg.extend_chain(parent, last))
        # Every prefix a mapping, all due soon (ttl 60 s), then a touch with a day's ttl:
        # the walk up rewrites every ancestor.
        stale = ["q" * len(chain[0]), *chain[1:]]
        tid = short.get_or_create(stale[:1])
        for h in stale[1:]:
            tid = short.extend_chain(tid, h)
        out["touch_every_ancestor"] = _one(client, lambda: reg.get_or_create(stale))
        tid = short.get_or_create(["p" * len(chain[0])])
        for h in chain[1:-1]:
            tid = short.extend_chain(tid, h)
        out["extend_chain_every_ancestor"] = _one(client, lambda: reg.extend_chain(tid, chain[-1]))
    finally:
        reg.clear()
        client.close()
    return out


def memory_per_thread(client_factory: Callable[[], redis.Redis], threads: int = 100_000) -> float:
    """used_memory per live thread at `threads` threads (benchmarks/memory.py's shapes)."""
    from .memory import _fill_ours, used_memory

    client = client_factory()
    reg = ThreadRegistry(client, namespace="server-cost-mem", ttl=TTL_S)
    try:
        m0 = used_memory(client)
        root = reg.initialize_root("acme")
        router = reg.extend_chain(reg.extend_chain(root, "console"), "router")
        _fill_ours(reg, router, 3, threads)
        return round((used_memory(client) - m0) / threads, 1)
    finally:
        reg.clear()
        client.close()


def table(result: dict[str, Any]) -> str:
    lines = [
        f"no-op `return 1`: {result['noop_us']} µs",
        "| operation | server µs | x no-op | target | ceiling ops/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for op, row in result["ops"].items():
        target = f"≤ {row['target']}x" if row["target"] else ""
        mark = "" if not row["target"] else (" PASS" if row["ratio"] <= row["target"] else " MISS")
        lines.append(f"| {op} | {row['us']} | {row['ratio']}x | {target}{mark} | {row['ceiling_ops_s']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_cost", description=__doc__)
    parser.add_argument("--url", help="an idle Redis to use instead of starting a throwaway redis-server")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="only the per-operation table")
    parser.add_argument("--sizes", default="1000,200000", help="namespace sizes of the flatness check")
    args = parser.parse_args(argv)
    from .env import redis_url

    with redis_url(args.url) as (url, _):

        def factory() -> redis.Redis:
            return redis.Redis.from_url(url)

        info = factory().info("server")
        when = time.strftime("%Y-%m-%d %H:%M")
        print(f"{info.get('redis_version')} ({info.get('executable', '')}), {when}")
        print(table(server_cost(factory, calls=args.calls, rounds=args.rounds)))
        if args.quick:
            return 0
        print("\nworst case at the input limits (one call, server µs):")
        for k, v in worst_case(factory).items():
            print(f"  {k}: {v}")
        sizes = [int(s) for s in args.sizes.split(",")]
        flat = flatness(factory, sizes, calls=args.calls, rounds=args.rounds)
        print("\nflat with size (server µs):")
        for size, row in flat["sizes"].items():
            print(f"  {size} threads: {row}")
        print(f"  ratio largest/smallest: {flat['ratio_large_to_small']}")
        print(f"\nmemory: {memory_per_thread(factory)} B per live thread at 100,000 threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
