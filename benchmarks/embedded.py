"""The embedded backend's speed: ops/s of a few operations on `embedded_client()`, beside a
seed-style registry (two dicts under a lock) and plain fakeredis, interleaved in one run.

    python -m benchmarks.embedded [--seconds S] [--cpu]

`measure_embedded(seconds)` is what `python -m benchmarks run` imports: ops/s per operation
on the embedded client, and the same operations on the dict baseline as ``dict_<op>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from registry import ThreadRegistry
from registry.embedded import embedded_async_client, embedded_client

OPS = ("extend_chain", "lookup", "get_or_create_existing", "prune_for_response")
ROUNDS = 3  # slices per (operation, contender), contenders interleaved within each round
POOL = 200


class DictRegistry:
    """The seed's in-memory registry, reduced to the benchmarked operations: chain <-> id
    in two dicts under one lock (no TTL, no validation)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, ...], str] = {}
        self._chains: dict[str, tuple[str, ...]] = {}

    def _bind(self, hops: tuple[str, ...]) -> str:
        tid = self._ids.get(hops)
        if tid is None:
            tid = str(uuid.uuid4())
            self._ids[hops] = tid
            self._chains[tid] = hops
        return tid

    def initialize_root(self, organism: str) -> str:
        with self._lock:
            return self._bind(("system", organism))

    def get_or_create(self, chain: str) -> str:
        with self._lock:
            return self._bind(tuple(chain.split(".")))

    def extend_chain(self, current: str, hop: str) -> str:
        with self._lock:
            return self._bind((*self._chains[current], hop))

    def lookup(self, tid: str) -> str | None:
        with self._lock:
            hops = self._chains.get(tid)
            return None if hops is None else ".".join(hops)

    def prune_for_response(self, tid: str) -> tuple[str | None, str | None]:
        with self._lock:
            hops = self._chains.get(tid)
            if hops is None or len(hops) < 2:
                return None, None
            return hops[-2], self._bind(hops[:-1])


def _callers(reg: Any, tag: str) -> dict[str, Callable[[int], Any]]:
    """fn(i) per operation, on a fixture made here: root, console, router, pools."""
    root = reg.initialize_root("acme")
    router = reg.extend_chain(reg.extend_chain(root, "console"), "router")
    chains = [f"system.acme.console.router.pool{k}" for k in range(POOL)]
    for chain in chains:
        reg.get_or_create(chain)
    leaves = [reg.extend_chain(router, f"leaf{k}") for k in range(POOL)]
    return {
        "extend_chain": lambda i: reg.extend_chain(router, f"{tag}{i}"),
        "lookup": lambda i: reg.lookup(leaves[i % POOL]),
        "get_or_create_existing": lambda i: reg.get_or_create(chains[i % POOL]),
        "prune_for_response": lambda i: reg.prune_for_response(leaves[i % POOL]),
    }


def _slice(
    fn: Callable[[int], Any], seconds: float, start: int, clock: Callable[[], float] = time.perf_counter
) -> tuple[int, float]:
    """Calls fn for about `seconds`; (calls, elapsed)."""
    pc = clock
    i = start
    t0 = pc()
    end = t0 + seconds
    while True:
        fn(i)
        i += 1
        if i % 16 == 0 and pc() >= end:
            break
    return i - start, pc() - t0


def measure(
    contenders: dict[str, Any], seconds: float, clock: Callable[[], float] = time.perf_counter
) -> dict[str, dict[str, float]]:
    """ops/s per contender and operation; each pair gets `seconds` in ROUNDS slices, the
    contenders' order rotated each round so machine noise falls on all alike."""
    runs = {name: _callers(reg, f"n{os.getpid()}-") for name, reg in contenders.items()}
    for fns in runs.values():  # warm-up: scripts loaded, caches filled
        for fn in fns.values():
            for i in range(20):
                fn(10**9 + i)
    done: dict[tuple[str, str], list[float]] = {}
    names = list(contenders)
    counter = 0
    for r in range(ROUNDS):
        order = names[r % len(names) :] + names[: r % len(names)]
        for op in OPS:
            for name in order:
                n, elapsed = _slice(runs[name][op], seconds / ROUNDS, counter, clock)
                counter += n
                calls, total = done.get((name, op), [0.0, 0.0])
                done[(name, op)] = [calls + n, total + elapsed]
    return {name: {op: done[(name, op)][0] / done[(name, op)][1] for op in OPS} for name in names}


def contenders(plain: bool) -> dict[str, Any]:
    """The embedded registry, plain fakeredis (if asked) and the dict baseline."""
    out: dict[str, Any] = {"embedded": ThreadRegistry(embedded_client(), namespace="bench-embedded")}
    if plain:
        import fakeredis

        out["plain"] = ThreadRegistry(fakeredis.FakeRedis(server=fakeredis.FakeServer()), namespace="bench")
    out["dict"] = DictRegistry()
    return out


def measure_embedded(seconds: float = 3.0, plain: bool = False, cpu: bool = False) -> dict[str, float]:
    """ops/s of each operation (OPS) on the embedded client (``<op>``), on the dict
    baseline (``dict_<op>``) and, with `plain`, on plain fakeredis (``plain_<op>``), all
    measured interleaved in this call; `seconds` per operation and contender. With `cpu`,
    per second of this process's CPU time rather than of the wall clock (steadier on a
    machine other jobs share)."""
    got = measure(contenders(plain), seconds, time.process_time if cpu else time.perf_counter)
    out = dict(got.pop("embedded"))
    for name, figures in got.items():
        out.update({f"{name}_{op}": v for op, v in figures.items()})
    return out


async def _measure_async(seconds: float) -> dict[str, dict[str, float]]:
    """ops/s of OPS through AsyncThreadRegistry, on the embedded async client and on plain
    FakeAsyncRedis, interleaved as `measure` does."""
    import fakeredis

    from registry.aio import AsyncThreadRegistry

    regs = {
        "embedded": AsyncThreadRegistry(embedded_async_client(), namespace="bench-embedded-aio"),
        "plain": AsyncThreadRegistry(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), namespace="b"),
    }
    calls: dict[str, dict[str, Callable[[int], Awaitable[Any]]]] = {}
    for name, reg in regs.items():
        root = await reg.initialize_root("acme")
        router = await reg.extend_chain(await reg.extend_chain(root, "console"), "router")
        chains = [f"system.acme.console.router.pool{k}" for k in range(POOL)]
        for chain in chains:
            await reg.get_or_create(chain)
        leaves = [await reg.extend_chain(router, f"leaf{k}") for k in range(POOL)]
        calls[name] = {
            "extend_chain": lambda i, reg=reg, router=router: reg.extend_chain(router, f"a{i}"),
            "lookup": lambda i, reg=reg, leaves=leaves: reg.lookup(leaves[i % POOL]),
            "get_or_create_existing": lambda i, reg=reg, chains=chains: reg.get_or_create(chains[i % POOL]),
            "prune_for_response": lambda i, reg=reg, leaves=leaves: reg.prune_for_response(leaves[i % POOL]),
        }
    done: dict[tuple[str, str], list[float]] = {}
    names = list(regs)
    for r in range(ROUNDS):
        for op in OPS:
            for name in names[r % 2 :] + names[: r % 2]:
                fn, i, t0 = calls[name][op], 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds / ROUNDS:
                    await fn(i)
                    i += 1
                calls_, total = done.get((name, op), [0.0, 0.0])
                done[(name, op)] = [calls_ + i, total + time.perf_counter() - t0]
    for reg in regs.values():
        await reg.aclose()
    return {name: {op: done[(name, op)][0] / done[(name, op)][1] for op in OPS} for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.embedded", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="per operation and contender")
    parser.add_argument("--cpu", action="store_true", help="ops per second of CPU time (sync tables)")
    args = parser.parse_args(argv)
    import fakeredis

    from registry.embedded import adapted, embedded_server

    clock = time.process_time if args.cpu else time.perf_counter
    got = measure(contenders(plain=True), args.seconds, clock)
    print(
        f"fakeredis {fakeredis.__version__} (adapted: {adapted(embedded_server())}), ops/s, "
        f"{args.seconds:g}s per operation and contender, interleaved"
        + (", per CPU second" if args.cpu else "")
    )
    print("| operation | embedded | plain fakeredis | dict under a lock | embedded / plain |")
    print("|---|---:|---:|---:|---:|")
    for op in OPS:
        cells = " | ".join(f"{got[name][op]:,.0f}" for name in got)
        print(f"| {op} | {cells} | {got['embedded'][op] / got['plain'][op]:.1f}x |")
    aio = asyncio.run(_measure_async(args.seconds))
    print("\nAsyncThreadRegistry, ops/s")
    print("| operation | embedded | plain FakeAsyncRedis | embedded / plain |")
    print("|---|---:|---:|---:|")
    for op in OPS:
        e, p = aio["embedded"][op], aio["plain"][op]
        print(f"| {op} | {e:,.0f} | {p:,.0f} | {e / p:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
