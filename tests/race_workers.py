"""Worker processes for tests/test_races.py (a plain module, so 'spawn' can import it).

A worker drives a registry with random operations on a small set of chains that every
worker shares, and records every (chain -> id) it observed. The choice of the next
operation and the bookkeeping live in `Planner`, which knows nothing about how calls are
sent, so the sync worker (`sync_worker`) and the asyncio worker (`async_worker`, many
tasks per process) share it and differ only in the loop that awaits or not.

Only operations whose result names a chain that cannot change under a race are recorded
as facts: no worker calls cleanup, and prune_for_response removes only one-hop chains, so
every chain of two or more hops keeps its mapping once made.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis

from registry import RootConflictError, ThreadRegistry

Hops = tuple[str, ...]

ORGANISM = "acme"
ROOT: Hops = ("system", ORGANISM)
HOPS: Hops = ("a", "b.c", "d")  # "b.c" is one hop: dotted chains are passed as tuples
MAX_DEPTH = 5


def shared_chains() -> list[Hops]:
    """The chains every worker asks for: 1 to 3 hops over HOPS, and under the root."""
    out: list[Hops] = [ROOT]
    for n in (1, 2, 3):
        out += list(itertools.product(HOPS, repeat=n))
    out += [(*ROOT, h) for h in HOPS]
    out += [(*ROOT, *pair) for pair in itertools.product(HOPS, repeat=2)]
    return out


def shared_ids(count: int = 16, seed: int = 0) -> list[tuple[str, str, str]]:
    """External ids with the (initiator, target) each is registered with, by every worker.

    More ids than pairs: some pairs have two ids racing to bind the same chain, and each
    chain root + pair also races with get_or_create / extend_chain of the same chain.
    """
    rng = random.Random(seed)
    pairs = list(itertools.product(HOPS, repeat=2))
    return [
        (str(uuid.UUID(int=rng.getrandbits(128), version=4)), *pairs[i % len(pairs)]) for i in range(count)
    ]


@dataclass(frozen=True)
class Plan:
    """What one worker process does (picklable)."""

    url: str
    namespace: str
    ttl: float | None
    seed: int
    ops: int  # per planner (per task in the async worker)
    ids: tuple[tuple[str, str, str], ...]
    tasks: int = 1  # asyncio tasks per process (async worker only)


@dataclass(frozen=True)
class Step:
    method: str
    args: tuple[Any, ...]
    chain: Hops | None = None  # the chain the answer belongs to, when known in advance


@dataclass
class Observed:
    """What a worker saw: chain -> ids given for it, and anything that broke a rule."""

    chains: dict[Hops, set[str]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    root: str | None = None

    def merge(self, other: Observed) -> None:
        for chain, seen in other.chains.items():
            self.chains.setdefault(chain, set()).update(seen)
        self.violations += other.violations
        self.calls.update(other.calls)


class Planner:
    """Chooses operations from what it has seen; checks and records their answers."""

    def __init__(self, plan: Plan, seed: int, root: str) -> None:
        self.rng = random.Random(seed)
        self.plan = plan
        self.root = root
        self.chains = shared_chains()
        self.known: dict[Hops, str] = {ROOT: root}
        self.out = Observed(root=root)
        self.record(ROOT, root, "initialize_root")

    def record(self, chain: Hops, thread_id: Any, how: str) -> None:
        if not isinstance(thread_id, str):
            self.out.violations.append(f"{how} for {chain!r} gave {thread_id!r}, not an id")
            return
        self.out.chains.setdefault(chain, set()).add(thread_id)
        mine = self.known.setdefault(chain, thread_id)
        if mine != thread_id:
            self.out.violations.append(f"{how}: {chain!r} was {mine} here before, now {thread_id}")

    def next_step(self) -> Step:
        rng = self.rng
        roll = rng.random()
        if roll < 0.25:
            chain = rng.choice(self.chains)
            dotted = not any("." in hop for hop in chain) and rng.random() < 0.5
            return Step("get_or_create", (".".join(chain) if dotted else chain,), chain)
        if roll < 0.35:
            pair = (rng.choice(HOPS), rng.choice(HOPS))
            return Step("start_chain", pair, pair)
        if roll < 0.55:
            hop = rng.choice(HOPS)
            stable = [c for c in self.known if 2 <= len(c) < MAX_DEPTH]
            if stable and rng.random() < 0.9:
                chain = rng.choice(stable)
                return Step("extend_chain", (self.known[chain], hop), (*chain, hop))
            return Step("extend_chain", (str(uuid.uuid4()), hop), (hop,))
        if roll < 0.70:
            chain = rng.choice(list(self.known))
            return Step("prune_for_response", (self.known[chain],), chain)
        if roll < 0.85:
            tid, initiator, target = rng.choice(self.plan.ids)
            if rng.random() < 0.3:
                tid = tid.upper()  # the same id, spelled otherwise
            return Step("register_thread", (tid, initiator, target), (*ROOT, initiator, target))
        if roll < 0.97:
            chain = rng.choice(list(self.known))
            return Step("lookup_hops", (self.known[chain],), chain)
        return Step("initialize_root", (ORGANISM,), ROOT)

    def observe(self, step: Step, result: Any) -> None:
        self.out.calls[step.method] += 1
        chain = step.chain
        assert chain is not None
        if step.method == "prune_for_response":
            if len(chain) == 1:
                # A one-hop chain's mapping is removed (or was already): no answer goes anywhere.
                if result != (None, None):
                    self.out.violations.append(f"prune of one-hop {chain!r} gave {result!r}")
                self.known.pop(chain, None)
                return
            target, parent_id = result
            if target != chain[-2]:
                self.out.violations.append(f"prune of {chain!r} gave target {target!r}")
            self.record(chain[:-1], parent_id, "prune_for_response")
        elif step.method == "lookup_hops":
            if result is None and len(chain) == 1:
                self.known.pop(chain, None)  # pruned by someone: it may come back, not a fact
                return
            if result != chain:
                self.out.violations.append(f"lookup_hops({step.args[0]}) of {chain!r} gave {result!r}")
        elif step.method == "initialize_root":
            if result != self.root:
                self.out.violations.append(f"initialize_root gave {result}, first {self.root}")
        else:
            self.record(chain, result, step.method)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=30)


def sync_worker(plan: Plan, start: Any, results: Any, index: int) -> None:
    """One process, one registry, plan.ops operations; puts (index, Observed or traceback)."""
    try:
        client = connect(plan.url)
        reg = ThreadRegistry(client, namespace=plan.namespace, ttl=plan.ttl)
        client.ping()
        start.wait(60)
        planner = Planner(plan, plan.seed, reg.initialize_root(ORGANISM))
        for _ in range(plan.ops):
            step = planner.next_step()
            planner.observe(step, getattr(reg, step.method)(*step.args))
        client.close()
        results.put((index, planner.out))
    except BaseException:
        results.put((index, traceback.format_exc()))


async def _async_main(plan: Plan, start: Any) -> Observed:
    import redis.asyncio

    from registry.aio import AsyncThreadRegistry

    client = redis.asyncio.Redis.from_url(plan.url, socket_timeout=30, max_connections=plan.tasks * 2)
    reg = AsyncThreadRegistry(client, namespace=plan.namespace, ttl=plan.ttl)
    await client.ping()
    start.wait(60)
    root = await reg.initialize_root(ORGANISM)

    async def task(k: int) -> Observed:
        planner = Planner(plan, plan.seed * 1000 + k, root)
        for _ in range(plan.ops):
            step = planner.next_step()
            planner.observe(step, await getattr(reg, step.method)(*step.args))
        return planner.out

    total = Observed(root=root)
    for out in await asyncio.gather(*(task(k) for k in range(plan.tasks))):
        total.merge(out)
    await client.aclose()
    return total


def async_worker(plan: Plan, start: Any, results: Any, index: int) -> None:
    """One process, plan.tasks asyncio tasks on one AsyncThreadRegistry, plan.ops each."""
    try:
        results.put((index, asyncio.run(_async_main(plan, start))))
    except BaseException:
        results.put((index, traceback.format_exc()))


# ---------------------------------------------------------------- boot races


@dataclass(frozen=True)
class BootPlan:
    url: str
    namespaces: tuple[str, ...]  # one round per namespace, all workers released together
    organism: str
    table: str = "orders"


def boot_worker(plan: BootPlan, barrier: Any, results: Any, index: int) -> None:
    """Per round: wait at the barrier, then initialize_root and initialize_table_root at once.

    Puts (index, [(root id or 'conflict', table root id or 'conflict'), ...]).
    """
    try:
        client = connect(plan.url)
        client.ping()
        answers: list[tuple[str, str]] = []
        for namespace in plan.namespaces:
            reg = ThreadRegistry(client, namespace=namespace, ttl=60)
            barrier.wait(60)
            try:
                root = reg.initialize_root(plan.organism)
            except RootConflictError:
                root = "conflict"
            try:
                table = reg.initialize_table_root(plan.table, plan.organism)
            except RootConflictError:
                table = "conflict"
            answers.append((root, table))
        client.close()
        results.put((index, answers))
    except BaseException:
        results.put((index, traceback.format_exc()))
