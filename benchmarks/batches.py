"""Batches of 1, 10 and 100 operations, sync and async, against single calls of the same class.

One batch is one pipeline round trip of EVALSHAs (registry.batch); single calls are one round
trip each. Variants are interleaved round by round like the load shapes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio

from . import contenders as C
from .env import make_client
from .loads import Fixture, Slice, build_fixture, run_slice

BATCH_OPS = ("extend_chain_new", "lookup")


def variants(sizes: Sequence[int]) -> list[tuple[str, str]]:
    """(api, size): size "single" is plain method calls, else a batch of that many operations."""
    return [(api, size) for api in ("sync", "async") for size in ("single", *map(str, sizes))]


def _sync_caller(reg: Any, op: str, size: str, fx: Fixture, tag: str) -> tuple[Callable[[int], Any], int]:
    router, leaves, n = fx.router_id, fx.leaf_ids, len(fx.leaf_ids)
    if size == "single":
        if op == "extend_chain_new":
            return (lambda i: reg.extend_chain(router, f"{tag}{i}")), 1
        return (lambda i: reg.lookup(leaves[i % n])), 1
    k = int(size)

    def run(i: int) -> list[Any]:
        b = reg.batch()
        base = i * k
        if op == "extend_chain_new":
            for j in range(base, base + k):
                b.extend_chain(router, f"{tag}{j}")
        else:
            for j in range(base, base + k):
                b.lookup(leaves[j % n])
        result: list[Any] = b.execute()
        return result

    return run, k


def _async_caller(
    areg: Any, op: str, size: str, fx: Fixture, tag: str
) -> tuple[Callable[[int], Awaitable[Any]], int]:
    router, leaves, n = fx.router_id, fx.leaf_ids, len(fx.leaf_ids)
    if size == "single":
        if op == "extend_chain_new":
            return (lambda i: areg.extend_chain(router, f"{tag}{i}")), 1
        return (lambda i: areg.lookup(leaves[i % n])), 1
    k = int(size)

    async def run(i: int) -> list[Any]:
        b = areg.batch()
        base = i * k
        if op == "extend_chain_new":
            for j in range(base, base + k):
                b.extend_chain(router, f"{tag}{j}")
        else:
            for j in range(base, base + k):
                b.lookup(leaves[j % n])
        result: list[Any] = await b.execute()
        return result

    return run, k


async def run_slice_async(fn: Callable[[int], Awaitable[Any]], duration: float, max_ops: int) -> Slice:
    pc = time.perf_counter
    lat: list[float] = []
    i = 0
    start = t0 = pc()
    end = start + duration
    while True:
        await fn(i)
        t1 = pc()
        lat.append(t1 - t0)
        i += 1
        if t1 >= end or i >= max_ops:
            break
        t0 = t1
    return Slice(i, t1 - start, lat)


def available() -> str | None:
    """Why batches cannot be measured, or None when the batch API and the async class exist."""
    try:
        from registry import ThreadRegistry
        from registry.aio import AsyncThreadRegistry
    except ImportError as exc:
        return f"registry.aio missing: {exc}"
    if not hasattr(ThreadRegistry, "batch") or not hasattr(AsyncThreadRegistry, "batch"):
        return "ThreadRegistry.batch / AsyncThreadRegistry.batch missing"
    return None


def run_batches(
    url: str, tag: str, rounds: int, slice_s: float, max_ops: int, pool: int, sizes: Sequence[int]
) -> list[tuple[int, str, str, str, Slice, int]]:
    """(round, op, api, size, slice, ops per call) for every interleaved slice."""
    from registry.aio import AsyncThreadRegistry

    client = make_client(url)
    reg = C.make("ours", client, tag)
    fx = build_fixture(reg, pool, "")
    aclient = redis.asyncio.Redis.from_url(url)
    areg = AsyncThreadRegistry(aclient, namespace=reg.namespace, ttl=C.TTL_S)  # type: ignore[attr-defined]
    loop = asyncio.new_event_loop()
    out: list[tuple[int, str, str, str, Slice, int]] = []
    vs = variants(sizes)
    try:
        for op in BATCH_OPS:  # warm up: scripts loaded, connections open
            for api, size in vs:
                if api == "sync":
                    fn, _ = _sync_caller(reg, op, size, fx, f"warm{api}{size}n")
                    run_slice(fn, 0.0, 2)
                else:
                    afn, _ = _async_caller(areg, op, size, fx, f"warm{api}{size}n")
                    loop.run_until_complete(run_slice_async(afn, 0.0, 2))
        for rnd in range(rounds):
            order = vs[rnd % len(vs) :] + vs[: rnd % len(vs)]
            for op in BATCH_OPS:
                for api, size in order:
                    new = f"{api}{size}r{rnd}n"
                    if api == "sync":
                        fn, k = _sync_caller(reg, op, size, fx, new)
                        s = run_slice(fn, slice_s, max(1, max_ops // k))
                    else:
                        afn, k = _async_caller(areg, op, size, fx, new)
                        s = loop.run_until_complete(run_slice_async(afn, slice_s, max(1, max_ops // k)))
                    out.append((rnd, op, api, size, s, k))
    finally:
        loop.run_until_complete(aclient.aclose())
        loop.close()
        client.close()
    return out
