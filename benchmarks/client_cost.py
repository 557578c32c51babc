"""What the client side of a call costs beyond a bare EVALSHA: interleaved rounds of the
no-op floor, single calls and batches of 100, sync and async, on one throwaway server.

For each slice the server's own µs (``cmdstat_evalsha`` usec, reset before the slice) are
subtracted from the wall time, so what remains is the client and the round trip; the
floor's remainder is redis-py plus the round trip, and ours minus the floor's is what this
library adds in Python per call:

    python -m benchmarks.client_cost [--url URL] [--rounds 7] [--calls 2000] [--profile OP]

Prints, per shape, the median wall µs per operation, the ratio floor/ours (ops/s against
the floor, the benchmark's "client vs floor"), the server µs, and the Python overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio

from registry import ThreadRegistry
from registry.aio import AsyncThreadRegistry

from .contenders import NOOP_SOURCE
from .env import redis_url

TTL_S = 86400
HEAD = (str(TTL_S * 1000), "00000000-0000-4000-8000-000000000000", "0")


def _server_usec(client: redis.Redis) -> tuple[int, int]:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("usec", 0)), int(stats.get("calls", 0))


class Shapes:
    """Every measured shape as fn(i) -> None (sync) or a coroutine function (async)."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop) -> None:
        self.client = redis.Redis.from_url(url)
        self.aclient = redis.asyncio.Redis.from_url(url)
        self.reg = ThreadRegistry(self.client, namespace="cc", ttl=TTL_S)
        self.areg = AsyncThreadRegistry(self.aclient, namespace="cc", ttl=TTL_S)
        self.reg.clear()
        root = self.reg.initialize_root("acme")
        self.router = self.reg.extend_chain(self.reg.extend_chain(root, "console"), "router")
        self.leaves = [self.reg.extend_chain(self.router, f"leaf{k}") for k in range(200)]
        self.sha = self.client.script_load(NOOP_SOURCE)
        self.keys = self.reg._ops.keys
        self.loop = loop
        self.n = 0

    def fresh(self) -> str:
        self.n += 1
        return f"n{self.n}"

    def sync(self) -> dict[str, tuple[Callable[[int], Any], int]]:
        c, reg, sha, keys, leaves, router = (
            self.client,
            self.reg,
            self.sha,
            self.keys,
            self.leaves,
            self.router,
        )
        ext_args = (*HEAD, router, "hop-000000", "")

        def batch_lookup(i: int) -> Any:
            b = reg.batch()
            for j in range(100):
                b.lookup(leaves[(i + j) % 200])
            return b.execute()

        def batch_extend(i: int) -> Any:
            b = reg.batch()
            tag = self.fresh()
            for j in range(100):
                b.extend_chain(router, f"{tag}b{j}")
            return b.execute()

        def floor_batch(i: int) -> Any:
            p = c.pipeline(transaction=False)
            for _ in range(100):
                p.execute_command("EVALSHA", sha, 3, *keys, *ext_args)
            return p.execute()

        tag = self.fresh()
        return {
            "floor lookup": (lambda i: c.execute_command("EVALSHA", sha, 3, *keys, leaves[i % 200]), 1),
            "floor extend": (lambda i: c.execute_command("EVALSHA", sha, 3, *keys, *ext_args), 1),
            "lookup": (lambda i: reg.lookup(leaves[i % 200]), 1),
            "extend_chain_new": (lambda i: reg.extend_chain(router, f"{tag}s{i}"), 1),
            "floor pipeline x100": (floor_batch, 100),
            "batch100 lookup": (batch_lookup, 100),
            "batch100 extend_chain_new": (batch_extend, 100),
        }

    def asynchronous(self) -> dict[str, tuple[Callable[[int], Awaitable[Any]], int]]:
        c, reg, sha, keys, leaves, router = (
            self.aclient,
            self.areg,
            self.sha,
            self.keys,
            self.leaves,
            self.router,
        )
        ext_args = (*HEAD, router, "hop-000000", "")

        async def batch_lookup(i: int) -> Any:
            b = reg.batch()
            for j in range(100):
                b.lookup(leaves[(i + j) % 200])
            return await b.execute()

        async def batch_extend(i: int) -> Any:
            b = reg.batch()
            tag = self.fresh()
            for j in range(100):
                b.extend_chain(router, f"{tag}b{j}")
            return await b.execute()

        tag = self.fresh()
        return {
            "async floor extend": (lambda i: c.execute_command("EVALSHA", sha, 3, *keys, *ext_args), 1),
            "async lookup": (lambda i: reg.lookup(leaves[i % 200]), 1),
            "async extend_chain_new": (lambda i: reg.extend_chain(router, f"{tag}a{i}"), 1),
            "async batch100 lookup": (batch_lookup, 100),
            "async batch100 extend_chain_new": (batch_extend, 100),
        }


def measure(url: str, rounds: int, calls: int) -> dict[str, list[tuple[float, float, float]]]:
    """shape -> [(wall µs, server µs, client CPU µs) per operation] per round."""
    loop = asyncio.new_event_loop()
    shapes = Shapes(url, loop)
    out: dict[str, list[tuple[float, float, float]]] = {}
    try:
        for rnd in range(rounds + 1):  # round 0 warms up
            sync, asy = shapes.sync(), shapes.asynchronous()
            names = list(sync) + list(asy)
            names = names[rnd % len(names) :] + names[: rnd % len(names)]
            for name in names:
                fn, k = sync[name] if name in sync else asy[name]
                n = max(2, calls // k)
                shapes.client.config_resetstat()
                cpu0 = time.thread_time()
                if name in sync:
                    start = time.perf_counter()
                    for i in range(n):
                        fn(i)
                    wall = time.perf_counter() - start
                else:
                    afn = fn

                    async def run(afn: Any = afn, n: int = n) -> float:
                        start = time.perf_counter()
                        for i in range(n):
                            await afn(i)
                        return time.perf_counter() - start

                    wall = loop.run_until_complete(run())
                cpu = time.thread_time() - cpu0
                usec, _ = _server_usec(shapes.client)
                if rnd:
                    out.setdefault(name, []).append(
                        (wall * 1e6 / (n * k), usec / (n * k), cpu * 1e6 / (n * k))
                    )
    finally:
        shapes.reg.clear()
        loop.run_until_complete(shapes.aclient.aclose())
        loop.close()
        shapes.client.close()
    return out


def report(out: dict[str, list[tuple[float, float, float]]]) -> list[str]:
    med = {name: tuple(statistics.median(r[k] for r in v) for k in range(3)) for name, v in out.items()}

    def floor_of(name: str) -> tuple[float, ...]:
        if name.startswith("async"):
            return med["async floor extend"]
        if "batch" in name or "pipeline" in name:
            return med["floor pipeline x100"]
        return med["floor lookup"] if "lookup" in name else med["floor extend"]

    head = ("shape", "wall µs/op", "floor/ours", "server µs", "client CPU µs", "- floor")
    lines = ["{:<32} {:>10} {:>10} {:>9} {:>13} {:>8}".format(*head)]
    for name, (wall, server, cpu) in med.items():
        fw, _, fc = floor_of(name)
        lines.append(
            f"{name:<32} {wall:>10.2f} {fw / wall:>10.2f} {server:>9.2f} {cpu:>13.2f} {cpu - fc:>+8.2f}"
        )
    for api, prefix in (("sync", ""), ("async", "async ")):
        ext = med[prefix + "extend_chain_new"][0] / med[prefix + "batch100 extend_chain_new"][0]
        look = med[prefix + "lookup"][0] / med[prefix + "batch100 lookup"][0]
        lines.append(
            f"{api} batch of 100 vs single calls (ops/s): extend_chain_new {ext:.1f}x, lookup {look:.1f}x"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.client_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", help="a Redis URL (default: a throwaway redis-server)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    with redis_url(args.url) as (url, _):
        lines = report(measure(url, args.rounds, args.calls))
    print(
        f"{args.rounds} rounds x {args.calls} operations per shape, interleaved; client CPU: this "
        "thread's CPU per operation; '- floor': beyond the floor's (redis-py alone)"
    )
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
