"""Bytes per live thread (server used_memory delta), this library against baseline (b)'s layout.

Threads are realistic: a root ``system.acme`` made by initialize_root, then
``system.acme.console.router.worker-<n>`` made by extend_chain from the router hop, and every
tenth one a ``system.acme.scheduler.cron.job-<n>`` made by get_or_create. TTL is on (one day)
for both. Writes are sent in batches (one pipeline per 1000) only to fill quickly.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis

from registry.keys import namespace_keys

from . import contenders as C

CHUNK = 1000


def used_memory(client: redis.Redis) -> int:
    """used_memory once the server has settled: no lazy frees (UNLINK) pending."""
    deadline = time.monotonic() + 30
    while True:
        info = client.info("memory")
        if int(info.get("lazyfree_pending_objects", 0)) == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.05)
    return int(client.info("memory")["used_memory"])


def _hop(n: int) -> tuple[bool, str]:
    """(made by get_or_create, name) of the n-th thread."""
    if n % 10 == 9:
        return True, f"system.acme.scheduler.cron.job-{n}"
    return False, f"worker-{n}"


def _fill_ours(reg: Any, router: str, start: int, stop: int) -> None:
    for lo in range(start, stop, CHUNK):
        b = reg.batch()
        for n in range(lo, min(stop, lo + CHUNK)):
            by_chain, name = _hop(n)
            if by_chain:
                b.get_or_create(name)
            else:
                b.extend_chain(router, name)
        b.execute()


def _fill_plain(base: C.PlainBaseline, router_chain: str, start: int, stop: int) -> None:
    ttl = base.ttl
    for lo in range(start, stop, CHUNK):
        p = base.r.pipeline(transaction=False)
        for n in range(lo, min(stop, lo + CHUNK)):
            by_chain, name = _hop(n)
            chain = name.replace(".", C.SEP) if by_chain else router_chain + C.SEP + name
            tid = str(uuid.uuid4())
            p.set(base.cp + chain, tid)
            p.expire(base.cp + chain, ttl)
            p.set(base.ip + tid, chain)
            p.expire(base.ip + tid, ttl)
        p.execute()


def drop_prefix(client: redis.Redis, prefix: str) -> None:
    batch: list[Any] = []
    for key in client.scan_iter(match=prefix + "*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def measure(client: redis.Redis, tag: str, sizes: Sequence[int]) -> dict[str, Any]:
    """{contender: {size: {bytes, threads, bytes_per_thread}}} for "ours" and "plain"."""
    sizes = sorted(sizes)
    out: dict[str, Any] = {}

    reg: Any = C.make("ours", client, f"mem-{tag}")
    threads_key = namespace_keys(reg.namespace)[1]
    m0 = used_memory(client)
    root = reg.initialize_root("acme")
    router = reg.extend_chain(reg.extend_chain(root, "console"), "router")
    made, rows = 3, {}
    for size in sizes:
        _fill_ours(reg, router, made, size)
        made = max(made, size)
        delta = used_memory(client) - m0
        live = int(client.hlen(threads_key)) + 1  # expiring entries + the permanent root
        rows[str(size)] = {"bytes": delta, "threads": live, "bytes_per_thread": round(delta / live, 1)}
    reg.clear()
    out["ours"] = rows

    plain = C.PlainBaseline(client, f"pm:{{{tag}}}")
    m0 = used_memory(client)
    k0 = int(client.dbsize())
    plain.extend_chain(plain.extend_chain(plain.initialize_root("acme"), "console"), "router")
    router_chain = C.SEP.join(("system", "acme", "console", "router"))
    made, rows = 3, {}
    for size in sizes:
        _fill_plain(plain, router_chain, made, size)
        made = max(made, size)
        delta = used_memory(client) - m0
        live = (int(client.dbsize()) - k0) // 2
        rows[str(size)] = {"bytes": delta, "threads": live, "bytes_per_thread": round(delta / live, 1)}
    drop_prefix(client, plain.prefix)
    out["plain"] = rows
    return out
