"""Worker processes for tests/test_failover.py (a plain module, so 'spawn' can import it).

A worker loops mixed operations (get_or_create, extend_chain, prune_for_response,
register_thread, start_chain, lookup_hops) over a few namespaces, through
``ThreadRegistry.from_url(url, cluster=True)`` or ``ThreadRegistry.from_sentinel``, until
the test sets `stop` (or its own bounds on count and time run out). It records:

- every answer that names a chain's id, as a `Fact` (namespace, chain, id, when, and
  whether the call returned normally = acknowledged; with ``wait_replicas`` an answer
  that came with a `DurabilityError` is recorded as not acknowledged: it may be lost);
- a timeline of every operation: (start, end, outcome), outcome "ok", "unacked"
  (DurabilityError: applied on the primary, not replicated in time) or the exception's
  type name, so the test can find the longest stretch without a successful operation;
- violations: an answer that contradicts an acknowledged fact this process saw before
  (another id for a chain, another chain for an id, a wrong prune target).

Only chains of two or more hops are used (no cleanup, no one-hop chains), so a mapping,
once made, stays: every acknowledged fact must still hold at the end.
"""

from __future__ import annotations

import itertools
import random
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from registry import ThreadRegistry
from registry.errors import DurabilityError

Hops = tuple[str, ...]

ORGANISM = "acme"
ROOT: Hops = ("system", ORGANISM)
HOPS: Hops = ("a", "b.c", "d")  # "b.c" is one hop
MAX_DEPTH = 6
WRITES = frozenset({"get_or_create", "extend_chain", "prune_for_response", "register_thread", "start_chain"})


def shared_chains() -> list[Hops]:
    """Chains every worker asks for: pairs, and one or two hops under the root."""
    out: list[Hops] = [ROOT]
    out += list(itertools.product(HOPS, repeat=2))
    out += [(*ROOT, h) for h in HOPS]
    out += [(*ROOT, *pair) for pair in itertools.product(HOPS, repeat=2)]
    return out


def shared_ids(count: int = 24, seed: int = 7) -> tuple[tuple[str, str, str], ...]:
    """External ids, each with the (initiator, target) every worker registers it with;
    more ids than pairs, so two ids race for some chains."""
    rng = random.Random(seed)
    pairs = list(itertools.product(HOPS, repeat=2))
    return tuple(
        (str(uuid.UUID(int=rng.getrandbits(128), version=4)), *pairs[i % len(pairs)]) for i in range(count)
    )


@dataclass(frozen=True)
class LoadPlan:
    """What one worker process does (picklable)."""

    kind: str  # "cluster" or "sentinel"
    namespaces: tuple[str, ...]
    roots: tuple[str, ...]  # the root id of each namespace (created, acknowledged, by the test)
    wait_replicas: int
    seed: int
    url: str = ""  # cluster: redis://host:port of a node
    sentinels: tuple[tuple[str, int], ...] = ()
    service_name: str = ""
    ids: tuple[tuple[str, str, str], ...] = field(default_factory=shared_ids)
    max_ops: int = 200_000
    max_seconds: float = 120.0


@dataclass
class Fact:
    namespace: str
    chain: Hops
    thread_id: str
    t0: float
    t1: float
    acked: bool
    worker: int


@dataclass
class Report:
    """What one worker saw."""

    worker: int
    facts: list[Fact] = field(default_factory=list)
    # (start, end, method, outcome): outcome "ok", "unacked" or an exception type name
    timeline: list[tuple[float, float, str, str]] = field(default_factory=list)
    violations: list[tuple[float, str]] = field(default_factory=list)  # (when, what)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: dict[str, str] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Step:
    method: str
    args: tuple[Any, ...]
    chain: Hops  # the chain the answer belongs to


class Planner:
    """One namespace's operations for one worker: chooses, checks and records."""

    def __init__(self, plan: LoadPlan, namespace: str, root: str, worker: int, rng: random.Random) -> None:
        self.plan = plan
        self.namespace = namespace
        self.worker = worker
        self.rng = rng
        self.chains = shared_chains()
        self.acked: dict[Hops, str] = {ROOT: root}  # facts this process saw acknowledged
        self.acked_ids: dict[str, Hops] = {root: ROOT}
        self.fresh = itertools.count()

    def next_step(self) -> Step:
        rng = self.rng
        roll = rng.random()
        if roll < 0.22:
            chain = rng.choice(self.chains)
            return Step("get_or_create", (chain,), chain)
        if roll < 0.45:
            base = rng.choice([c for c in self.acked if len(c) < MAX_DEPTH])
            # half of them make a chain nobody made before: new writes to lose or keep
            hop = f"w{self.worker}-{next(self.fresh)}" if rng.random() < 0.5 else rng.choice(HOPS)
            return Step("extend_chain", (self.acked[base], hop), (*base, hop))
        if roll < 0.57:
            deep = [c for c in self.acked if len(c) >= 3]
            if deep:
                chain = rng.choice(deep)
                return Step("prune_for_response", (self.acked[chain],), chain)
        if roll < 0.72:
            tid, initiator, target = rng.choice(self.plan.ids)
            return Step("register_thread", (tid, initiator, target), (*ROOT, initiator, target))
        if roll < 0.78:
            pair = (rng.choice(HOPS), rng.choice(HOPS))
            return Step("start_chain", pair, pair)
        chain = rng.choice(list(self.acked))
        return Step("lookup_hops", (self.acked[chain],), chain)

    def observe(self, report: Report, step: Step, result: Any, acked: bool, t0: float, t1: float) -> None:
        """Check an answer against what this process saw acknowledged; record it."""
        if step.method == "lookup_hops":
            if result != step.chain:
                report.violations.append(
                    (
                        t1,
                        f"{self.namespace}: lookup_hops({step.args[0]}) gave {result!r}, acknowledged as "
                        f"{step.chain!r}",
                    )
                )
            return
        chain = step.chain
        if step.method == "prune_for_response":
            target, parent = result
            if target != chain[-2]:
                report.violations.append((t1, f"{self.namespace}: prune of {chain!r} gave target {target!r}"))
            chain = chain[:-1]
            result = parent
        if not isinstance(result, str):
            report.violations.append((t1, f"{self.namespace}: {step.method} for {chain!r} gave {result!r}"))
            return
        known = self.acked.get(chain)
        if known is not None and known != result:
            report.violations.append(
                (
                    t1,
                    f"{self.namespace}: {step.method} gave {result} for {chain!r}, "
                    f"acknowledged before as {known}",
                )
            )
        other = self.acked_ids.get(result)
        if other is not None and other != chain:
            report.violations.append(
                (
                    t1,
                    f"{self.namespace}: {step.method} gave {result} for {chain!r}, "
                    f"acknowledged before for {other!r}",
                )
            )
        report.facts.append(Fact(self.namespace, chain, result, t0, t1, acked, self.worker))
        if acked and known is None and other is None:
            self.acked[chain] = result
            self.acked_ids[result] = chain


def connect(plan: LoadPlan, namespace: str, shared: ThreadRegistry | None) -> ThreadRegistry:
    if shared is not None:  # one client per process, one registry per namespace
        return ThreadRegistry(shared.client, namespace=namespace, wait_replicas=plan.wait_replicas, ttl=3600)
    if plan.kind == "cluster":
        return ThreadRegistry.from_url(
            plan.url,
            namespace=namespace,
            cluster=True,
            wait_replicas=plan.wait_replicas,
            ttl=3600,
            socket_timeout=2.0,
            socket_connect_timeout=1.0,
        )
    return ThreadRegistry.from_sentinel(
        list(plan.sentinels),
        plan.service_name,
        namespace=namespace,
        wait_replicas=plan.wait_replicas,
        ttl=3600,
        socket_timeout=2.0,
        socket_connect_timeout=1.0,
        sentinel_kwargs={"socket_timeout": 1.0},
    )


def _where(reg: ThreadRegistry, step: Step) -> str:
    """What each server and Sentinel says right after a wrong answer (a diagnosis for the
    failure message): the pool's connections, each Sentinel's primary, and, for a thread
    id, which servers hold it and with what role."""
    import redis

    out = []
    try:
        pool = reg.client.connection_pool
        conns = [*pool._available_connections, *pool._in_use_connections]
        out.append("pool " + ",".join(f"{c.port}{'+' if c._sock else '-'}" for c in conns))
        sentinel = reg._sentinel
        ports = set()
        for s in sentinel.sentinels:
            try:
                addr = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", pool.service_name)
                out.append(f"sentinel {s.connection_pool.connection_kwargs['port']} names {addr[1]}")
                ports.add(int(addr[1]))
                for r in s.execute_command("SENTINEL", "REPLICAS", pool.service_name):
                    d = dict(zip(r[::2], r[1::2], strict=False))
                    ports.add(int(d["port"]))
            except Exception as exc:
                out.append(f"sentinel error {exc!r}")
        tid: Any = step.args[0] if step.args else None
        for port in sorted(ports):
            try:
                c: Any = redis.Redis(port=port, socket_timeout=1.0)
                role = c.execute_command("ROLE")[0]
                held = c.hexists(reg._ops.keys[1], tid) if isinstance(tid, str) else None
                out.append(f"{port}: {role!r} holds={held} keys={c.dbsize()}")
            except Exception as exc:
                out.append(f"{port}: {exc!r}")
        again = reg.lookup_hops(tid) if step.method == "lookup_hops" else None
        out.append(f"again {again!r}")
    except Exception as exc:
        out.append(f"diagnosis failed {exc!r}")
    return "; ".join(out)


def load_worker(plan: LoadPlan, ready: Any, start: Any, stop: Any, results: Any, index: int) -> None:
    """Loop mixed operations until `stop` is set; put (index, Report or traceback)."""
    try:
        rng = random.Random(plan.seed)
        regs: list[ThreadRegistry] = []
        for ns in plan.namespaces:
            regs.append(connect(plan, ns, regs[0] if regs else None))
        planners = [
            Planner(plan, ns, root, index, rng) for ns, root in zip(plan.namespaces, plan.roots, strict=True)
        ]
        for reg, root in zip(regs, plan.roots, strict=True):
            assert reg.lookup_hops(root) == ROOT  # connected, and the root is there
        report = Report(worker=index)
        ready.put(index)
        if not start.wait(60):
            raise TimeoutError("never started")
        deadline = time.monotonic() + plan.max_seconds
        for _ in range(plan.max_ops):
            if stop.is_set() or time.monotonic() > deadline:
                break
            k = rng.randrange(len(regs))
            planner = planners[k]
            step = planner.next_step()
            report.calls[step.method] += 1
            t0 = time.monotonic()
            try:
                result = getattr(regs[k], step.method)(*step.args)
                acked = True
                outcome = "ok"
            except DurabilityError as exc:
                result = exc.results[0]
                acked = False
                outcome = "unacked"
            except Exception as exc:
                t1 = time.monotonic()
                name = type(exc).__name__
                report.errors[name] += 1
                report.error_samples.setdefault(name, f"{step.method}: {exc}"[:300])
                report.timeline.append((t0, t1, step.method, name))
                continue
            t1 = time.monotonic()
            report.timeline.append((t0, t1, step.method, outcome))
            seen = len(report.violations)
            planner.observe(report, step, result, acked, t0, t1)
            if len(report.violations) > seen and plan.kind == "sentinel":
                report.violations[-1] = (t1, report.violations[-1][1] + " | " + _where(regs[k], step))
        regs[0].close()
        results.put((index, report))
    except BaseException:
        results.put((index, traceback.format_exc()))
