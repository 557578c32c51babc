"""What the client side of a call costs beyond a bare EVALSHA: interleaved rounds of the
no-op floor, single calls and batches of 100, sync and async, on one throwaway server.

For each slice the server's own µs (``cmdstat_evalsha`` usec, reset before the slice) are
subtracted from the wall time, so what remains is the client and the round trip; the
floor's remainder is redis-py plus the round trip, and ours minus the floor's is what this
library adds in Python per call:

    python -m benchmarks.client_cost [--url URL] [--rounds 7] [--calls 2000]
    python -m benchmarks.client_cost --fake

Prints, per shape, the median wall µs per operation, the ratio floor/ours (ops/s against
the floor, the benchmark's "client vs floor"), the server µs, and this thread's CPU µs
(which moves by several µs from slice to slice on a busy machine: read the wall).
"floor on pool" sends the floor's no-op the way the library sends a single call (on a
pooled connection, not through redis-py's execute_command: docs/design.md, "The client's
share of a call"). Two shapes split a new extend_chain's distance from the floor: "raw extend_chain_new"
sends the library's own script with EVALSHA and no library Python, and "floor spin" a
script with no effects that keeps the server about as long; the line after the table
gives the split (the script's share, the library's Python, and how much the round trip
grows per µs of server time; "async floor spin" gives the same growth for asyncio, whose
round trip grows faster: a reply that is not there yet suspends the coroutine).
``--fake`` measures the Python alone: the same shapes through redis-py's whole client
path onto connections that answer at once with canned replies (no socket, no server),
so ours minus the floor is exactly what this library adds.
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
from registry.operations import random_uuid
from registry.scripts import script
from registry.transport import send_on_pool

from .contenders import NOOP_SOURCE
from .env import redis_url

TTL_S = 86400
HEAD = (str(TTL_S * 1000), "00000000-0000-4000-8000-000000000000", "0")
# A script with no effects that keeps the server about as long as a new extend_chain
# (the "floor spin"): how the round trip grows with server time alone.
SPIN_SOURCE = "local x = 0 for i = 1, 3000 do x = x + i end return 1"


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
        self.spin = self.client.script_load(SPIN_SOURCE)
        self.ext = script("extend_chain")
        self.client.script_load(self.ext.source)
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
        spin, ext, head = self.spin, self.ext.sha, HEAD[0]

        def raw_extend(i: int) -> Any:  # the library's script, without the library's Python
            args = (head, random_uuid(), "0", router, f"{tag}r{i}", "")
            return c.execute_command("EVALSHA", ext, 3, *keys, *args)

        return {
            "floor lookup": (lambda i: c.execute_command("EVALSHA", sha, 3, *keys, leaves[i % 200]), 1),
            "floor extend": (lambda i: c.execute_command("EVALSHA", sha, 3, *keys, *ext_args), 1),
            # The same no-op sent as the library sends a single call (send_on_pool).
            "floor on pool": (lambda i: send_on_pool(c, ("EVALSHA", sha, 3, *keys, *ext_args)), 1),
            "floor spin": (lambda i: c.execute_command("EVALSHA", spin, 3, *keys, *ext_args), 1),
            "raw extend_chain_new": (raw_extend, 1),
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
        spin = self.spin

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
            "async floor spin": (lambda i: c.execute_command("EVALSHA", spin, 3, *keys, *ext_args), 1),
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
    # Where a new extend_chain's round trip goes beyond the floor's: the server's time
    # (the raw script against the floor), and this library's Python (ours against raw).
    # The floor spin shows how much a round trip grows per µs of server time alone.
    fw, fs, _ = med["floor extend"]
    sw, ss, _ = med["floor spin"]
    rw, rs, _ = med["raw extend_chain_new"]
    ow = med["extend_chain_new"][0]
    slope = (sw - fw) / (ss - fs) if ss > fs else float("nan")
    pw = med["floor on pool"][0]
    lines.append(
        f"extend_chain_new beyond the floor: {ow - fw:+.1f} µs a call = the script {rw - fw:+.1f} "
        f"(server {rs - fs:+.1f} µs; sent bare through execute_command: {fw / rw:.2f}x the floor) + "
        f"this library's Python and its send path {ow - rw:+.1f} (sending on a pooled connection "
        f"saves {fw - pw:.1f} µs of the floor's own round trip); the floor spin: {slope:.2f} µs of "
        "round trip per server µs"
    )
    afw, afs, afc = med["async floor extend"]
    asw, ass, asc = med["async floor spin"]
    lines.append(
        f"async, the same server time alone (floor spin against floor): {asw - afw:+.1f} µs of "
        f"round trip and {asc - afc:+.1f} µs of this thread's CPU for {ass - afs:+.1f} server µs"
    )
    for api, prefix in (("sync", ""), ("async", "async ")):
        ext = med[prefix + "extend_chain_new"][0] / med[prefix + "batch100 extend_chain_new"][0]
        look = med[prefix + "lookup"][0] / med[prefix + "batch100 lookup"][0]
        lines.append(
            f"{api} batch of 100 vs single calls (ops/s): extend_chain_new {ext:.1f}x, lookup {look:.1f}x"
        )
    return lines


# ---------------------------------------------------------------- --fake: no socket, canned replies

ID = b"0b7c2f4e-3a1d-4c2e-9f00-1234567890ab"


def _canned(args: list[bytes], loads: list[int]) -> Any:
    name = args[0].upper()
    if name == b"SCRIPT":
        loads[0] += 1
        return b"QUEUED"
    if name == b"EXEC":
        n, loads[0] = loads[0], 0
        return [b"0" * 40] * n
    if name == b"EVALSHA":
        return ID if len(args) > 5 else b"system\x1facme\x1fconsole"
    return b"OK"


class _Answers:
    """Parses what is written (hiredis) and queues one canned reply per command."""

    def __init__(self) -> None:
        import hiredis

        self.reader = hiredis.Reader()
        self.replies: list[Any] = []
        self.loads = [0]
        self.at = 0

    def written(self, chunks: Any) -> None:
        self.reader.feed(chunks if isinstance(chunks, bytes) else b"".join(chunks))
        while (command := self.reader.gets()) is not False:
            self.replies.append(_canned(command, self.loads))

    def next(self) -> Any:
        reply = self.replies[self.at]
        self.at += 1
        if self.at == len(self.replies):
            self.replies, self.at = [], 0
        return reply


class FakeConnection(redis.Connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answers = _Answers()

    def connect(self) -> None:
        self._sock = True  # type: ignore[assignment]

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        self.connect()

    def can_read(self, timeout: float = 0) -> bool:
        return False

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self._answers.written(command)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        return self._answers.next()


class FakeAsyncConnection(redis.asyncio.Connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answers = _Answers()

    async def connect(self) -> None:
        pass

    async def can_read(self, timeout: float = 0) -> bool:  # type: ignore[override]
        return False

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self._answers.written(command)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        return self._answers.next()


def measure_fake(rounds: int, calls: int) -> dict[str, list[float]]:
    """shape -> [CPU µs per operation] per round, on canned-reply connections."""
    client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=FakeConnection))
    aclient = redis.asyncio.Redis(
        connection_pool=redis.asyncio.ConnectionPool(connection_class=FakeAsyncConnection)
    )
    reg = ThreadRegistry(client, namespace="cc", ttl=TTL_S)
    areg = AsyncThreadRegistry(aclient, namespace="cc", ttl=TTL_S)
    keys, sha, tid = reg._ops.keys, "0" * 40, ID.decode()
    ext_args = (*HEAD, tid, "hop-000000", "")

    def batch(r: Any, op: str) -> Any:
        b = r.batch()
        for _ in range(100):
            if op == "lookup":
                b.lookup(tid)
            else:
                b.extend_chain(tid, "hop-000000")
        return b.execute()

    def floor_batch() -> Any:
        p = client.pipeline(transaction=False)
        for _ in range(100):
            p.execute_command("EVALSHA", sha, 3, *keys, *ext_args)
        return p.execute()

    sync: dict[str, tuple[Callable[[], Any], int]] = {
        "floor extend": (lambda: client.execute_command("EVALSHA", sha, 3, *keys, *ext_args), 1),
        "floor lookup": (lambda: client.execute_command("EVALSHA", sha, 3, *keys, tid), 1),
        "lookup": (lambda: reg.lookup(tid), 1),
        "extend_chain": (lambda: reg.extend_chain(tid, "hop-000000"), 1),
        "floor pipeline x100": (floor_batch, 100),
        "batch100 lookup": (lambda: batch(reg, "lookup"), 100),
        "batch100 extend_chain": (lambda: batch(reg, "extend_chain"), 100),
    }
    asy: dict[str, tuple[Callable[[], Awaitable[Any]], int]] = {
        "async floor extend": (lambda: aclient.execute_command("EVALSHA", sha, 3, *keys, *ext_args), 1),
        "async lookup": (lambda: areg.lookup(tid), 1),
        "async extend_chain": (lambda: areg.extend_chain(tid, "hop-000000"), 1),
        "async batch100 lookup": (lambda: batch(areg, "lookup"), 100),
        "async batch100 extend_chain": (lambda: batch(areg, "extend_chain"), 100),
    }
    loop = asyncio.new_event_loop()
    out: dict[str, list[float]] = {}

    async def awaited(fn: Callable[[], Awaitable[Any]], n: int) -> None:
        for _ in range(n):
            await fn()

    try:
        for rnd in range(rounds + 1):  # round 0 warms up
            for name in list(sync) + list(asy):
                fn, k = sync[name] if name in sync else asy[name]  # type: ignore[assignment]
                n = max(2, calls // k)
                start = time.thread_time()
                if name in sync:
                    for _ in range(n):
                        fn()
                else:
                    loop.run_until_complete(awaited(fn, n))  # type: ignore[arg-type]
                if rnd:
                    out.setdefault(name, []).append((time.thread_time() - start) * 1e6 / (n * k))
    finally:
        loop.close()
    return out


def report_fake(out: dict[str, list[float]]) -> list[str]:
    med = {name: statistics.median(v) for name, v in out.items()}
    lines = [f"{'shape':<32} {'CPU µs/op':>9} {'- floor':>8}"]
    for name, cpu in med.items():
        if "100" in name:  # batches against redis-py's own pipeline of 100 no-op EVALSHAs
            floor = med["floor pipeline x100"]
        elif name.startswith("async"):
            floor = med["async floor extend"]
        else:
            floor = med["floor lookup" if "lookup" in name else "floor extend"]
        lines.append(f"{name:<32} {cpu:>9.2f} {cpu - floor:>+8.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.client_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", help="a Redis URL (default: a throwaway redis-server)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--fake", action="store_true", help="no server: canned replies, Python alone")
    args = parser.parse_args(argv)
    if args.fake:
        print(f"{args.rounds} rounds x {args.calls} operations per shape; no socket, canned replies")
        for line in report_fake(measure_fake(args.rounds, args.calls)):
            print(line)
        return 0
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
