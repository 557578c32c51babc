"""Load shapes: timed slices of one operation on one contender, interleaved round by round.

A *slice* runs one (operation, contender) pair for a fixed time and records each call's
latency. A *round* runs a slice of every pair, the contenders in an order rotated each round,
so machine noise (other jobs, turbo, GC) falls on all contenders alike. With several client
processes (multiprocessing spawn), every process walks the same schedule and all meet at a
barrier before each slice, so they load the server together.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import contenders as C
from .env import make_client

OPS = (
    "get_or_create_new",
    "get_or_create_existing",
    "extend_chain_new",
    "extend_chain_existing",
    "prune_for_response",
    "register_thread",
    "lookup",
)
# Operations that bind new chains: their results are compared across clients under contention.
CREATING_OPS = ("get_or_create_new", "extend_chain_new", "register_thread")
ROUTER = "system.acme.console.router"
WARMUP_CALLS = 5


@dataclass
class Fixture:
    """Threads made before the timed slices: the router hop, a pool of chains and of leaves."""

    router_id: str
    existing_chains: list[str]
    leaf_ids: list[str]
    leaf_hops: list[str]  # the last hop of each leaf, under the router


def build_fixture(c: C.Contender, pool: int, label: str) -> Fixture:
    root = c.initialize_root("acme")
    router = c.extend_chain(c.extend_chain(root, "console"), "router")
    chains = [f"{ROUTER}.pool-{label}{k}" for k in range(pool)]
    for chain in chains:
        c.get_or_create(chain)
    hops = [f"leaf-{label}{k}" for k in range(pool)]
    leaves = [c.extend_chain(router, hop) for hop in hops]
    return Fixture(router, chains, leaves, hops)


def op_caller(op: str, c: C.Contender, fx: Fixture, tag: str) -> Callable[[int], Any]:
    """fn(i) runs the i-th call of `op` in a slice; `tag` makes new chains new."""
    # Each creating op has its own hop names: get_or_create_new and extend_chain_new both make
    # children of the router, and must not hand each other existing chains.
    if op == "get_or_create_new":
        base = f"{ROUTER}.{tag}g"
        return lambda i: c.get_or_create(f"{base}{i}")
    if op == "get_or_create_existing":
        chains, n = fx.existing_chains, len(fx.existing_chains)
        return lambda i: c.get_or_create(chains[i % n])
    if op == "extend_chain_new":
        router = fx.router_id
        return lambda i: c.extend_chain(router, f"{tag}e{i}")
    if op == "extend_chain_existing":
        router, hops, n = fx.router_id, fx.leaf_hops, len(fx.leaf_hops)
        return lambda i: c.extend_chain(router, hops[i % n])
    if op == "prune_for_response":
        leaves, n = fx.leaf_ids, len(fx.leaf_ids)
        return lambda i: c.prune_for_response(leaves[i % n])
    if op == "register_thread":
        return lambda i: c.register_thread(str(uuid.uuid4()), "console", f"{tag}{i}")
    if op == "lookup":
        leaves, n = fx.leaf_ids, len(fx.leaf_ids)
        return lambda i: c.lookup(leaves[i % n])
    raise ValueError(op)


@dataclass
class Slice:
    ops: int
    elapsed: float
    latencies: list[float]  # seconds, one per call (or per batch)
    results: list[Any] | None = None
    retries: int = 0


def run_slice(fn: Callable[[int], Any], duration: float, max_ops: int, record: bool = False) -> Slice:
    pc = time.perf_counter
    lat: list[float] = []
    out: list[Any] | None = [] if record else None
    i = 0
    start = t0 = pc()
    end = start + duration
    while True:
        r = fn(i)
        t1 = pc()
        lat.append(t1 - t0)
        if out is not None:
            out.append(r)
        i += 1
        if t1 >= end or i >= max_ops:
            break
        t0 = t1
    return Slice(i, t1 - start, lat, out)


def schedule(rounds: int, ops: Sequence[str], names: Sequence[str]) -> list[tuple[int, str, str]]:
    """(round, op, contender) in run order: contenders rotated each round."""
    out: list[tuple[int, str, str]] = []
    for r in range(rounds):
        order = list(names[r % len(names) :]) + list(names[: r % len(names)])
        for op in ops:
            out.extend((r, op, name) for name in order)
    return out


@dataclass
class WorkerPlan:
    url: str
    tags: dict[str, str]  # contender -> key tag
    names: tuple[str, ...]
    ops: tuple[str, ...]
    rounds: int
    slice_s: float
    max_ops: int
    pool: int
    worker: int
    shared_chains: bool
    fixtures: dict[str, Fixture] = field(default_factory=dict)  # given when chains are shared


@dataclass
class WorkerResult:
    worker: int
    slices: list[tuple[int, str, str, Slice]]


def new_tag(shared: bool, worker: int, rnd: int) -> str:
    """Hop prefix for new chains: the same in every worker when chains are shared."""
    return f"r{rnd}n" if shared else f"w{worker}r{rnd}n"


def run_schedule(plan: WorkerPlan, barrier: Any = None) -> WorkerResult:
    client = make_client(plan.url)
    cs = {name: C.make(name, client, plan.tags[name]) for name in plan.names}
    fixtures = plan.fixtures or {
        name: build_fixture(cs[name], plan.pool, f"w{plan.worker}-") for name in plan.names
    }
    for name in plan.names:  # warm up: scripts loaded, connections open, code paths hot
        for op in plan.ops:
            fn = op_caller(op, cs[name], fixtures[name], f"warm{plan.worker}n")
            for i in range(WARMUP_CALLS):
                fn(i)
    out: list[tuple[int, str, str, Slice]] = []
    for rnd, op, name in schedule(plan.rounds, plan.ops, plan.names):
        c = cs[name]
        fn = op_caller(op, c, fixtures[name], new_tag(plan.shared_chains, plan.worker, rnd))
        record = plan.shared_chains and op in CREATING_OPS and name != "floor"
        before = C.retries_of(c)
        if barrier is not None:
            barrier.wait(timeout=300)
        s = run_slice(fn, plan.slice_s, plan.max_ops, record)
        s.retries = C.retries_of(c) - before
        out.append((rnd, op, name, s))
    client.close()
    return WorkerResult(plan.worker, out)


def _worker_main(plan: WorkerPlan, barrier: Any, queue: Any) -> None:
    try:
        queue.put(("ok", run_schedule(plan, barrier)))
    except BaseException as exc:  # report, never hang the parent
        barrier.abort()
        queue.put(("error", f"worker {plan.worker}: {exc!r}"))


def run_processes(plans: list[WorkerPlan]) -> list[WorkerResult]:
    """Runs each plan in its own spawned process; they meet at a barrier before each slice."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(plans))
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(p, barrier, queue), daemon=True) for p in plans]
    for p in procs:
        p.start()
    results: list[WorkerResult] = []
    errors: list[str] = []
    for _ in procs:
        status, payload = queue.get(timeout=1800)
        if status == "ok":
            results.append(payload)
        else:
            errors.append(payload)
    for p in procs:
        p.join(timeout=30)
    if errors:
        raise RuntimeError("; ".join(errors))
    return sorted(results, key=lambda r: r.worker)
