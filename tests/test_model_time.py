"""Model-based test with time in the model: three clients with different ttls, a clock that moves.

tests/test_model.py runs with ttls far beyond a test, so nothing expires there. Here expiry is
the point. Three ThreadRegistry instances share one namespace, each with its own ttl (one None,
two different finite ones, chosen per example), every rule picks the client that calls, and a
rule moves the clock: on fakeredis a virtual clock (tests/clock.py; ttls of 1, 5 and 60 s,
jumps of 10 ms to 100 s), on a real redis-server real sleeps (ttls of 0.2 and 0.5 s).

The model keeps, for every mapping that may be live, bounds on its deadline, from the contract
(README "TTL and garbage collection", docs/design.md "Expiry"):

- lower: a write that touches a thread (get_or_create, start_chain, extend_chain,
  register_thread, the shorter chain of prune_for_response) keeps it live until at least
  time-of-write + the ttl of the client that wrote - its headroom (a deadline within the
  headroom of that is left as it is), and so every live ancestor of it; a write
  with ttl=None, a root and a table root make it permanent. A deadline, once seen in
  threads(), is never shortened: it too is a lower bound. Before its lower bound a mapping
  that was not removed (cleanup, a one-hop prune) must be live.
- upper: no deadline is later than the latest write that touched the chain or a descendant,
  plus its ttl and the ancestors' headroom (ttl/64, at most 1 s); and a deadline seen in
  threads() stays as it was until a write could have raised it. Past it a mapping is gone.
- in between (on a real server only near a deadline) the model is unsure: the registry's
  answer decides, and it must be one of the possible answers.

After every step, on what threads() shows (server time read before and after):

- I1 one chain, one id: no two live rows share a chain; lookup_hops of each row gives its chain
  (once per state of a row); a get_or_create of a row's chain, through a fourth instance with
  the shortest ttl and only on rows whose deadline is later than that write would set (so it
  changes nothing), returns the row's id.
- I2 ancestors outlive descendants: for live rows A, X with A's chain a proper prefix of X's:
  X permanent => A permanent, else A permanent or A's deadline >= X's, whatever the order of
  creation. The one documented exception (README, docs/design.md): a chain removed with
  cleanup() or a one-hop prune while a descendant lived, and created again, may expire
  before its descendants until they are touched again. Such a chain is exempt as an
  ancestor (and gets no lower bound through its descendants) until no entry below it can
  be live any more.
- I3 every mapping within its lower bound is live, with a deadline >= that bound and <= its
  upper bound, and gone past its upper bound; every live row is a mapping the model knows,
  with the chain the model knows.
- I4 roots, table roots and ttl=None writes are permanent; a permanent row needs a write that
  made its chain or a descendant permanent.
- I5 a chain that expired and is asked for again gets an id (maybe the same) and all of the
  above still holds.
- ids never cross chains (SPEC 4.6): an id the registry binds to a chain was never bound to
  another chain (ids a caller chooses with register_thread are the caller's business).

A rule flushes the server's script cache (SCRIPT FLUSH) and then runs 2 to 4 operations as one
batch; each result must be what the same operation gives as a single call in the model.

At the end, four plain tests pin known bugs, each on both backends.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import permutations
from typing import Any, ClassVar, TypeVar

import fakeredis
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

import registry
from registry import RegistryError, RootConflictError, ThreadInfo, ThreadRegistry, embedded
from tests.clock import VirtualClock
from tests.servers import RedisServer

T = TypeVar("T")
Hops = tuple[str, ...]

NAMESPACE = "acme"
HOPS = ["system", "acme", "console", "router", "calculator.add"]
ORGS = ["acme", "globex"]
TABLES = ["console", "jobs"]

# No "explain" phase: it traces every line run, which costs minutes on a failing machine.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]

INF = float("inf")
NEVER = -INF
LIVE, DEAD, MAYBE = "live", "dead", "maybe"


# register_thread with an id bound to another chain refuses with ThreadIdConflictError and
# writes nothing (returning the id would route the new chain's traffic to the old one).
ThreadIdConflict: type[RegistryError] = registry.ThreadIdConflictError


def headroom_ms(ttl_ms: int) -> int:
    """What an ancestor pushed through a descendant may get beyond the ttl (docs/design.md)."""
    return min(ttl_ms // 64, 1000)


def dotted(hops: Hops) -> str:
    return ".".join(hops)


def is_prefix(a: Hops, x: Hops) -> bool:
    """Whether a is a proper prefix of x (a is an ancestor chain of x)."""
    return len(a) < len(x) and x[: len(a)] == a


@dataclass(frozen=True)
class Span:
    """Server time (ms) before and after a call: the call's NOW lies in [t0, t1]."""

    t0: int
    t1: int


@dataclass
class Mapping:
    """One id -> chain mapping the model believes may be live."""

    tid: str
    hops: Hops
    lower: float = NEVER  # certainly live while the server clock is before this (ms)
    permanent: bool = False
    seen: float | None = None  # the deadline threads() showed, while no write can have raised it


Resolve = Callable[[str], Hops | None]

ids = Bundle("ids")
hop_names = st.sampled_from(HOPS)
chains = st.lists(hop_names, min_size=1, max_size=4).map(tuple)
known_or_unknown_id = st.one_of(ids, ids, ids, st.uuids().map(str))
batch_op = st.one_of(
    st.tuples(st.just("get_or_create"), chains),
    st.tuples(st.just("start_chain"), hop_names, hop_names),
    st.tuples(st.just("extend_chain"), known_or_unknown_id, hop_names),
    st.tuples(st.just("prune_for_response"), known_or_unknown_id),
    st.tuples(st.just("register_thread"), st.one_of(st.uuids().map(str), ids), hop_names, hop_names),
    st.tuples(st.just("lookup"), known_or_unknown_id),
    st.tuples(st.just("cleanup"), known_or_unknown_id),
)


class TimedRegistryMachine(RuleBasedStateMachine):
    """The rules and the model; subclasses say which server, which clock, which ttls."""

    clock: ClassVar[VirtualClock | None] = None
    margin_ms: ClassVar[int] = 0  # slack for the time between the server's TIME and a check
    batch_slack_ms: ClassVar[int] = 0  # how long a batch may take
    probes_per_step: ClassVar[int] = 2

    def __init__(self) -> None:
        super().__init__()
        if self.clock is not None:
            self.clock.reset()
        self.client = self.new_client()
        self.clients: list[ThreadRegistry] = []
        self.ttl_ms: list[int | None] = []
        self.probe: ThreadRegistry | None = None
        self.probe_ttl_ms = 0
        self.probe_turn = 0
        self.looked_up: set[ThreadInfo] = set()
        self.maps: dict[str, Mapping] = {}
        self.by_chain: dict[Hops, str] = {}
        self.upper: dict[Hops, float] = {}  # per chain: no deadline of it is later (ms)
        # every chain the registry itself ever bound each id to (not the caller's choices)
        self.history: dict[str, set[Hops]] = {}
        self.pending: list[tuple[str, Span, int | None]] = []  # touches of maybe-live ancestors
        # The documented exception to I2: chains removed (cleanup, one-hop prune) while a
        # descendant lived (see exempt()).
        self.removed_above_living: set[Hops] = set()
        self.root: str | None = None
        self.tables: dict[str, str] = {}

    def new_client(self) -> Any:
        """A client on an empty server (one per example)."""
        raise NotImplementedError

    # -------------------------------------------------------------- time and calls

    def now_ms(self) -> int:
        if self.clock is not None:
            return self.clock.now_ms()
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def timed(self, fn: Callable[[], T]) -> tuple[T | RegistryError, Span]:
        t0 = self.now_ms()
        out: T | RegistryError
        try:
            out = fn()
        except (ThreadIdConflict, RootConflictError) as exc:
            out = exc
        return out, Span(t0, self.now_ms())

    def lookup_hops(self, tid: str) -> Hops | None:
        return self.clients[0].lookup_hops(tid)

    def pass_time(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            time.sleep(seconds)

    # -------------------------------------------------------------- the model's bookkeeping

    def status(self, m: Mapping, span: Span) -> str:
        if m.permanent or span.t1 + self.margin_ms < m.lower:
            return LIVE
        upper = self.upper.get(m.hops, NEVER)
        if m.seen is not None:
            upper = min(upper, m.seen)
        if span.t0 - self.margin_ms >= upper:
            return DEAD
        return MAYBE

    def status_of(self, tid: str, span: Span) -> tuple[Mapping | None, str]:
        m = self.maps.get(tid.lower())
        return m, (DEAD if m is None else self.status(m, span))

    def forget(self, m: Mapping) -> None:
        """The mapping is gone (expired, or removed)."""
        self.maps.pop(m.tid, None)
        if self.by_chain.get(m.hops) == m.tid:
            del self.by_chain[m.hops]
        self.pending = [p for p in self.pending if p[0] != m.tid]

    def remove(self, m: Mapping, span: Span) -> None:
        """cleanup() or a one-hop prune: gone, with its root or table-root pointer."""
        if any(is_prefix(m.hops, x.hops) and self.status(x, span) != DEAD for x in self.maps.values()):
            self.removed_above_living.add(m.hops)
        self.forget(m)
        if self.root == m.tid:
            self.root = None
        for table in [t for t, tid in self.tables.items() if tid == m.tid]:
            del self.tables[table]

    def bind(self, tid: str, hops: Hops, chosen: bool = False) -> Mapping:
        old = self.by_chain.get(hops)
        if old is not None and old != tid:
            self.forget(self.maps[old])
        m = self.maps.get(tid)
        if m is not None and m.hops != hops:
            self.forget(m)
            m = None
        if m is None:
            m = self.maps[tid] = Mapping(tid, hops)
            self.by_chain[hops] = tid
        if not chosen:  # an id the caller chose (register_thread) is the caller's business
            self.history.setdefault(tid, set()).add(hops)
        return m

    @staticmethod
    def raise_lower(m: Mapping, span: Span, ttl_ms: int | None) -> None:
        if ttl_ms is None:
            m.permanent = True
        else:
            # A touch within the headroom of now + ttl leaves a deadline as it is
            # (docs/design.md, Expiry): the bound a touch gives is ttl - headroom.
            m.lower = max(m.lower, span.t0 + ttl_ms - headroom_ms(ttl_ms))

    def touch(self, tid: str, span: Span, ttl_ms: int | None) -> None:
        """A write touched tid: it and every live ancestor live at least until t0 + ttl."""
        m = self.maps[tid]
        self.raise_lower(m, span, ttl_ms)
        reach = INF if ttl_ms is None else span.t1 + ttl_ms + headroom_ms(ttl_ms) + self.margin_ms
        for n in range(1, len(m.hops) + 1):
            chain = m.hops[:n]
            self.upper[chain] = max(self.upper.get(chain, NEVER), reach)
        self.may_raise(m, reach, span)
        for n in range(1, len(m.hops)):
            chain = m.hops[:n]
            aid = self.by_chain.get(chain)
            if aid is None:
                continue
            a = self.maps[aid]
            state = self.status(a, span)
            if state == DEAD:
                self.forget(a)  # gone before this write; a write never brings a mapping back
                continue
            self.may_raise(a, reach, span)
            if self.exempt(chain, span):
                continue  # may be below a descendant's deadline: no bound through them
            if state == LIVE:
                self.raise_lower(a, span, ttl_ms)
            else:
                self.pending.append((aid, span, ttl_ms))  # applies if it shows up live next

    def exempt(self, chain: Hops, span: Span) -> bool:
        """Whether I2 may fail with `chain` as the ancestor (the documented exception).

        A chain removed while a descendant lived, and created again, gets no floor from
        the descendants that lived then, nor from those whose walk up stopped below it: it
        may expire before them until they are touched. The model does not follow which
        touch mends which pair; it exempts the chain until no entry below it can be live
        (every descendant chain past its upper bound), when new descendants reach it again.
        """
        if chain not in self.removed_above_living:
            return False
        if any(is_prefix(chain, x) and upper > span.t0 - self.margin_ms for x, upper in self.upper.items()):
            return True
        self.removed_above_living.discard(chain)
        return False

    def may_raise(self, m: Mapping, reach: float, span: Span) -> None:
        """A write may have raised m's deadline up to `reach`: what threads() showed may be stale.

        A deadline is pushed to max(itself, now + ttl (+ headroom)), so one already at
        `reach` stays; an exempt chain may be raised further (to its descendants' deadlines).
        """
        if m.seen is not None and (m.seen < reach or self.exempt(m.hops, span)):
            m.seen = None

    def expect_chain_id(self, hops: Hops, got: str, span: Span, what: str) -> None:
        """The registry answered `got` as the id of `hops` (bound now if it had none)."""
        e = self.maps.get(self.by_chain.get(hops, ""))
        if e is not None and self.status(e, span) == LIVE:
            assert got == e.tid, (
                f"{what}: chain {dotted(hops)} is live as {e.tid} (certainly until {e.lower}, "
                f"call at {span.t0}..{span.t1}), but the registry gave {got}"
            )
        if e is not None and got == e.tid:
            return  # the chain's own id (possibly one a caller chose with register_thread)
        # A new binding: the registry may give a chain an id it gave that chain before, never
        # one that was ever bound to another chain.
        elsewhere = self.history.get(got, set()) - {hops}
        assert not elsewhere, (
            f"{what}: the registry gave {got} for {dotted(hops)}, but that id was bound to "
            f"{sorted(dotted(h) for h in elsewhere)} (SPEC 4.6: ids never cross chains)"
        )
        self.bind(got, hops)

    # -------------------------------------------------------------- one operation, in the model

    def m_chain(self, ttl_ms: int | None, hops: Hops, got: object, span: Span, what: str) -> list[str]:
        """get_or_create / start_chain, and the shorter chain of a prune."""
        assert isinstance(got, str), f"{what}: {got!r}"
        self.expect_chain_id(hops, got, span, what)
        self.touch(got, span, ttl_ms)
        return [got]

    def m_extend(
        self,
        ttl_ms: int | None,
        current: str,
        hop: str,
        got: object,
        span: Span,
        resolve: Resolve,
        what: str,
        *,
        in_batch: bool = False,
    ) -> list[str]:
        assert isinstance(got, str), f"{what}: {got!r}"
        m, state = self.status_of(current, span)
        alone: Hops = (hop,)
        if state == LIVE:
            assert m is not None
            hops = (*m.hops, hop)
        elif state == DEAD:
            hops = alone
            if m is not None:
                # (In a batch a later operation may have removed what this one made.)
                seen = alone if in_batch else resolve(got)
                assert seen == alone, (
                    f"{what}: {current} ({dotted(m.hops)}) is past every deadline it could have "
                    f"(call at {span.t0}..{span.t1}), yet {got} holds {seen}"
                )
                self.forget(m)
        else:
            assert m is not None
            longer = (*m.hops, hop)
            seen = resolve(got)
            assert seen in (longer, alone), f"{what}: gave {got}, which holds {seen}, not {longer} or {alone}"
            hops = seen
            if hops == alone:
                self.forget(m)  # the current id had expired
        return self.m_chain(ttl_ms, hops, got, span, what)

    def m_prune(self, ttl_ms: int | None, thread: str, got: object, span: Span, what: str) -> list[str]:
        assert isinstance(got, tuple) and len(got) == 2, f"{what}: {got!r}"
        target, new_id = got
        m, state = self.status_of(thread, span)
        if (target, new_id) == (None, None):
            assert m is None or state != LIVE or len(m.hops) == 1, (
                f"{what}: (None, None), but {thread} is certainly live as {dotted(m.hops)}"
            )
            if m is not None and len(m.hops) == 1 and state != DEAD:
                self.remove(m, span)
            elif m is not None:
                self.forget(m)
            return []
        assert m is not None and state != DEAD, f"{what}: {got!r} for an id that is gone"
        assert len(m.hops) > 1, f"{what}: {got!r} for the one-hop chain {dotted(m.hops)}"
        assert target == m.hops[-2], f"{what}: target {target!r}, chain {m.hops}"
        return self.m_chain(ttl_ms, m.hops[:-1], new_id, span, what)

    def m_register(
        self,
        ttl_ms: int | None,
        thread: str,
        initiator: str,
        target: str,
        got: object,
        span: Span,
        resolve: Resolve,
        what: str,
    ) -> list[str]:
        tid = thread.lower()
        hops: Hops = (initiator, target)
        if self.root is not None:
            hops = (*self.maps[self.root].hops, *hops)
        m, state = self.status_of(tid, span)
        if isinstance(got, ThreadIdConflict):
            assert m is not None and state != DEAD and m.hops != hops, (
                f"{what}: {got!r}, but {tid} is {'gone' if m is None else dotted(m.hops)}"
            )
            return []
        assert isinstance(got, str), f"{what}: {got!r}"
        if m is not None and state == LIVE:
            assert m.hops == hops, f"{what}: {tid} is live as {dotted(m.hops)}, yet it was returned"
            assert got == tid, f"{what}: {tid} is live, but the registry gave {got}"
            self.touch(tid, span, ttl_ms)  # bound to hops, or (SPEC §3) returned unchanged
            return [tid]
        if m is not None and state == MAYBE:
            seen = resolve(tid) if got == tid else None
            if seen == m.hops:
                self.touch(tid, span, ttl_ms)  # it was live
                return [tid]
            self.forget(m)  # it had expired
        elif m is not None:
            self.forget(m)
        e = self.maps.get(self.by_chain.get(hops, ""))
        e_state = DEAD if e is None else self.status(e, span)
        if got == tid:
            assert e is None or e_state != LIVE or e.tid == tid, (
                f"{what}: bound {tid}, but {dotted(hops)} is certainly live as {e.tid}"
            )
            self.bind(tid, hops, chosen=True)  # the caller's choice of id: no SPEC 4.6 check
        else:
            assert e is not None and e_state != DEAD and got == e.tid, (
                f"{what}: gave {got}; expected {tid} or the id {dotted(hops)} has"
            )
        self.touch(got, span, ttl_ms)
        return [got]

    def m_cleanup(self, thread: str, got: object, span: Span, what: str) -> list[str]:
        assert got is None, f"{what}: {got!r}"
        m, state = self.status_of(thread, span)
        if m is not None:
            if state == DEAD:
                self.forget(m)
            else:
                self.remove(m, span)
        return []

    def m_lookup(self, thread: str, got: object, span: Span, what: str, *, as_hops: bool) -> None:
        m, state = self.status_of(thread, span)
        live: object = None if m is None else (m.hops if as_hops else dotted(m.hops))
        if state == LIVE:
            assert got == live, f"{what}: {got!r}, but {thread} is certainly live as {live!r}"
        elif state == DEAD:
            assert got is None, f"{what}: {got!r} for an id that is certainly gone"
        else:
            assert got in (None, live), f"{what}: {got!r}, expected None or {live!r}"
            if got is None and m is not None:
                self.forget(m)

    def m_root(
        self, ttl_ms: int | None, hops: Hops, pointer: str | None, got: object, span: Span, what: str
    ) -> list[str]:
        """initialize_root / initialize_table_root: permanent; one organism while it lives."""
        if pointer is not None:
            current = self.maps[pointer].hops
            if current == hops:
                assert got == pointer, f"{what}: gave {got!r}, the root is {pointer}"
                return [pointer]
            assert isinstance(got, RootConflictError), f"{what}: {got!r}, but the root is {dotted(current)}"
            return []
        assert isinstance(got, str), f"{what}: {got!r}"
        self.expect_chain_id(hops, got, span, what)
        self.touch(got, span, None)
        return [got]

    # -------------------------------------------------------------- setup

    def setup_clients(self, ttls: Sequence[float | None]) -> None:
        self.clients = [ThreadRegistry(self.client, namespace=NAMESPACE, ttl=ttl) for ttl in ttls]
        self.ttl_ms = [None if ttl is None else round(ttl * 1000) for ttl in ttls]
        shortest = min(ttl for ttl in ttls if ttl is not None)
        self.probe = ThreadRegistry(self.client, namespace=NAMESPACE, ttl=shortest)
        self.probe_ttl_ms = round(shortest * 1000)

    # -------------------------------------------------------------- rules

    @rule(target=ids, k=st.integers(0, 2), org=st.sampled_from(ORGS))
    def initialize_root(self, k: int, org: str) -> Any:
        got, span = self.timed(lambda: self.clients[k].initialize_root(org))
        out = self.m_root(self.ttl_ms[k], ("system", org), self.root, got, span, f"initialize_root({org!r})")
        if out and self.root is None:
            self.root = out[0]
        return multiple(*out)

    @rule(target=ids, k=st.integers(0, 2), table=st.sampled_from(TABLES), org=st.sampled_from(ORGS))
    def initialize_table_root(self, k: int, table: str, org: str) -> Any:
        got, span = self.timed(lambda: self.clients[k].initialize_table_root(table, org))
        what = f"initialize_table_root({table!r}, {org!r})"
        out = self.m_root(self.ttl_ms[k], (table, org), self.tables.get(table), got, span, what)
        if out and table not in self.tables:
            self.tables[table] = out[0]
        return multiple(*out)

    @rule(target=ids, k=st.integers(0, 2), hops=chains)
    def get_or_create(self, k: int, hops: Hops) -> Any:
        got, span = self.timed(lambda: self.clients[k].get_or_create(list(hops)))
        return multiple(*self.m_chain(self.ttl_ms[k], hops, got, span, f"get_or_create({list(hops)})"))

    @rule(target=ids, k=st.integers(0, 2), initiator=hop_names, target_hop=hop_names)
    def start_chain(self, k: int, initiator: str, target_hop: str) -> Any:
        got, span = self.timed(lambda: self.clients[k].start_chain(initiator, target_hop))
        what = f"start_chain({initiator!r}, {target_hop!r})"
        return multiple(*self.m_chain(self.ttl_ms[k], (initiator, target_hop), got, span, what))

    @rule(target=ids, k=st.integers(0, 2), current=known_or_unknown_id, hop=hop_names)
    def extend_chain(self, k: int, current: str, hop: str) -> Any:
        got, span = self.timed(lambda: self.clients[k].extend_chain(current, hop))
        what = f"extend_chain({current}, {hop!r})"
        return multiple(*self.m_extend(self.ttl_ms[k], current, hop, got, span, self.lookup_hops, what))

    @rule(target=ids, k=st.integers(0, 2), thread=known_or_unknown_id)
    def prune_for_response(self, k: int, thread: str) -> Any:
        got, span = self.timed(lambda: self.clients[k].prune_for_response(thread))
        return multiple(*self.m_prune(self.ttl_ms[k], thread, got, span, f"prune_for_response({thread})"))

    @rule(
        target=ids,
        k=st.integers(0, 2),
        thread=st.one_of(ids, st.uuids().map(str), st.uuids().map(str)),
        initiator=hop_names,
        target_hop=hop_names,
    )
    def register_thread(self, k: int, thread: str, initiator: str, target_hop: str) -> Any:
        got, span = self.timed(lambda: self.clients[k].register_thread(thread, initiator, target_hop))
        what = f"register_thread({thread}, {initiator!r}, {target_hop!r})"
        out = self.m_register(
            self.ttl_ms[k], thread, initiator, target_hop, got, span, self.lookup_hops, what
        )
        return multiple(*out)

    @rule(k=st.integers(0, 2), thread=st.one_of(ids, ids, st.uuids().map(str)))
    def cleanup(self, k: int, thread: str) -> None:
        got, span = self.timed(lambda: self.clients[k].cleanup(thread))
        self.m_cleanup(thread, got, span, f"cleanup({thread})")

    @rule(k=st.integers(0, 2), thread=known_or_unknown_id)
    def lookup(self, k: int, thread: str) -> None:
        chain, span = self.timed(lambda: self.clients[k].lookup(thread))
        self.m_lookup(thread, chain, span, f"lookup({thread})", as_hops=False)
        hops, span = self.timed(lambda: self.clients[k].lookup_hops(thread))
        self.m_lookup(thread, hops, span, f"lookup_hops({thread})", as_hops=True)

    @rule(
        target=ids,
        k=st.integers(0, 2),
        ops=st.lists(batch_op, min_size=2, max_size=4),
        as_block=st.booleans(),
    )
    def flush_then_batch(self, k: int, ops: list[tuple[Any, ...]], as_block: bool) -> Any:
        """SCRIPT FLUSH, then a batch whose results must be the single calls' results."""
        self.settle([args[0] for name, *args in ops if name not in ("get_or_create", "start_chain")])
        reg = self.clients[k]

        def queue(b: Any) -> None:
            for name, *args in ops:
                if name == "get_or_create":
                    b.get_or_create(list(args[0]))
                else:
                    getattr(b, name)(*args)

        self.client.script_flush()
        t0 = self.now_ms()
        b = reg.batch()
        if as_block:
            try:
                with b:
                    queue(b)
            except RegistryError as exc:
                # The block form raises the first failed operation's exception.
                assert b.results is not None and any(r is exc for r in b.results), repr(exc)
            results: list[Any] = list(b.results or [])
        else:
            queue(b)
            results = b.execute(raise_on_error=False)
        span = Span(t0, self.now_ms())
        assert len(results) == len(ops), f"batch {ops}: {len(results)} results"
        ttl_ms = self.ttl_ms[k]
        out: list[str] = []
        for i, ((name, *args), got) in enumerate(zip(ops, results, strict=True)):
            what = f"batch {ops} op {i} {name}{tuple(args)}"
            if isinstance(got, Exception) and not isinstance(got, ThreadIdConflict):
                raise AssertionError(f"{what}: raised {got!r}")
            if name == "get_or_create":
                out += self.m_chain(ttl_ms, args[0], got, span, what)
            elif name == "start_chain":
                out += self.m_chain(ttl_ms, (args[0], args[1]), got, span, what)
            elif name == "extend_chain":
                out += self.m_extend(
                    ttl_ms, args[0], args[1], got, span, self.lookup_hops, what, in_batch=True
                )
            elif name == "prune_for_response":
                out += self.m_prune(ttl_ms, args[0], got, span, what)
            elif name == "register_thread":
                out += self.m_register(ttl_ms, args[0], args[1], args[2], got, span, self.lookup_hops, what)
            elif name == "lookup":
                self.m_lookup(args[0], got, span, what, as_hops=False)
            else:
                out += self.m_cleanup(args[0], got, span, what)
        return multiple(*out)

    def settle(self, inputs: list[str]) -> None:
        """Make the model sure of these ids for the length of a batch (a batch cannot be
        asked in the middle which way an uncertain id went): on a real server, wait until
        an id near its deadline is past it."""
        for _ in range(3):
            now = self.now_ms()
            span = Span(now, now + self.batch_slack_ms)
            unsure = [m for m in (self.maps.get(tid.lower()) for tid in inputs) if m is not None]
            unsure = [m for m in unsure if self.status(m, span) == MAYBE]
            if not unsure:
                return
            self.snapshot()  # the exact deadlines, now
            left = [m.seen if m.seen is not None else m.lower for m in unsure if m.tid in self.maps]
            latest = max(left, default=NEVER)
            if now < latest < INF:
                self.pass_time(min((latest - now + 2 * self.margin_ms + 1) / 1000, 1.0))

    # -------------------------------------------------------------- invariants

    def snapshot(self) -> list[ThreadInfo]:
        """Read threads() and check I1-I4 on it; adopt the deadlines it shows."""
        s0 = self.now_ms()
        rows = self.clients[0].threads()
        span = Span(s0, self.now_ms())
        by_id = {}
        by_hops: dict[Hops, str] = {}
        for row in rows:
            assert row.thread_id not in by_id, f"threads() lists {row.thread_id} twice"
            by_id[row.thread_id] = row
            other = by_hops.setdefault(row.hops, row.thread_id)
            assert other == row.thread_id, (
                f"I1: chain {dotted(row.hops)} has two live ids, {other} and {row.thread_id}"
            )
            m = self.maps.get(row.thread_id)
            assert m is not None, (
                f"I3: live row {row} is no mapping the model has (ever bound to "
                f"{self.history.get(row.thread_id)})"
            )
            assert m.hops == row.hops, f"I1: {row.thread_id} holds {row.hops}, the model says {m.hops}"

        for tid, pspan, ttl_ms in self.pending:
            if tid in by_id and tid in self.maps:
                self.raise_lower(self.maps[tid], pspan, ttl_ms)  # it was live when touched
        self.pending = []

        for m in list(self.maps.values()):
            state = self.status(m, span)
            seen = by_id.get(m.tid)
            if seen is None:
                assert state != LIVE, (
                    f"I3/I4: {m.tid} ({dotted(m.hops)}) is gone, but must live "
                    f"{'forever' if m.permanent else f'until {m.lower}'} (now {span.t0}..{span.t1})"
                )
                self.forget(m)
                continue
            upper = self.upper.get(m.hops, NEVER)
            assert state != DEAD, (
                f"I3: {seen} is live, but it is past every deadline it could have "
                f"({min(upper, INF if m.seen is None else m.seen)}, now {span.t0}..{span.t1})"
            )
            if m.permanent:
                assert seen.deadline_ms is None, f"I4: {seen} should be permanent"
            elif seen.deadline_ms is None:
                assert upper == INF, f"I4: {seen} is permanent, but no permanent write reached it"
                m.permanent = True
            else:
                assert seen.deadline_ms + self.margin_ms >= m.lower, (
                    f"I3: {seen} has a deadline before one it must reach ({m.lower})"
                )
                assert seen.deadline_ms <= upper, (
                    f"I3: {seen} has a deadline past every write's reach ({upper})"
                )
                m.lower = max(m.lower, seen.deadline_ms)
                m.seen = seen.deadline_ms

        for a in rows:
            if a.deadline_ms is None or self.exempt(a.hops, span):
                continue
            for x in rows:
                if is_prefix(a.hops, x.hops):
                    assert x.deadline_ms is not None, (
                        f"I2: ancestor {dotted(a.hops)} ({a.thread_id}) expires at {a.deadline_ms}, "
                        f"but its descendant {dotted(x.hops)} ({x.thread_id}) is permanent"
                    )
                    assert a.deadline_ms >= x.deadline_ms, (
                        f"I2: ancestor {dotted(a.hops)} ({a.thread_id}) expires at {a.deadline_ms}, "
                        f"before its descendant {dotted(x.hops)} ({x.thread_id}) at {x.deadline_ms}"
                    )
        return rows

    @invariant()
    def invariants_hold(self) -> None:
        if not self.clients:
            return
        rows = self.snapshot()

        # I1: lookup_hops of each row, once per state of the row (id, chain, deadline).
        for row in rows:
            if row in self.looked_up:
                continue
            self.looked_up.add(row)
            hops = self.clients[0].lookup_hops(row.thread_id)
            if row.deadline_ms is not None and row.deadline_ms <= self.now_ms() + self.margin_ms:
                continue  # may have expired since threads() (real clock only)
            assert hops == row.hops, f"I1: lookup_hops({row.thread_id}) = {hops}, threads() says {row.hops}"

        # I1 through get_or_create, on rows this write cannot change: their deadline is later
        # than the one the probe's (shortest) ttl would give, or they are permanent.
        assert self.probe is not None
        probe = self.probe
        horizon = self.now_ms() + self.margin_ms * 2 + self.probe_ttl_ms + headroom_ms(self.probe_ttl_ms)
        eligible = [row for row in rows if row.deadline_ms is None or row.deadline_ms > horizon]
        for i in range(min(self.probes_per_step, len(eligible))):
            row = eligible[(self.probe_turn + i) % len(eligible)]
            got, pspan = self.timed(lambda: probe.get_or_create(list(row.hops)))  # noqa: B023
            assert got == row.thread_id, (
                f"I1: get_or_create({list(row.hops)}) = {got}, but {row.thread_id} holds that chain "
                f"(deadline {row.deadline_ms})"
            )
            self.m_chain(self.probe_ttl_ms, row.hops, got, pspan, f"probe get_or_create({list(row.hops)})")
        self.probe_turn += 1


SUPPRESS = [HealthCheck.too_slow, HealthCheck.filter_too_much]

# ------------------------------------------------------------------ fakeredis, virtual clock

FAKE_CLOCK = VirtualClock()
FAKE_TTL_ORDERS = [order for pair in [(1, 5), (1, 60), (5, 60)] for order in permutations((None, *pair))]
FAKE_STEPS = [0.01, 0.5, 0.99, 1.0, 1.001, 1.2, 1.3, 4.99, 5.0, 5.1, 6.5, 59.9, 60.0, 61.0, 75.0, 100.0]


class FakeTimedMachine(TimedRegistryMachine):
    clock = FAKE_CLOCK
    adapted = True  # on the embedded server as registry.embedded adapts it, else plain fakeredis

    def new_client(self) -> Any:
        return embedded.client_for(embedded.new_server() if self.adapted else fakeredis.FakeServer())

    @initialize(ttls=st.sampled_from(FAKE_TTL_ORDERS))
    def setup(self, ttls: tuple[float | None, ...]) -> None:
        self.setup_clients(ttls)

    @rule(seconds=st.one_of(st.sampled_from(FAKE_STEPS), st.floats(0.01, 100.0)))
    def advance(self, seconds: float) -> None:
        self.pass_time(seconds)


# Hypothesis stops shrinking after 5 minutes; let it report what it has by then.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("adapted", [True, False], ids=["embedded", "plain"])
def test_model_time_on_fakeredis(adapted: bool) -> None:
    machine = type("Machine", (FakeTimedMachine,), {"adapted": adapted})
    with FAKE_CLOCK.installed():
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=60,
                stateful_step_count=40,
                deadline=None,
                phases=PHASES,
                suppress_health_check=SUPPRESS,
            ),
        )


# ------------------------------------------------------------------ a real server, real sleeps

REAL_TTL_ORDERS = list(permutations((None, 0.2, 0.5)))
REAL_STEPS = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.45, 0.5, 0.55, 0.6]


@pytest.fixture(scope="module")
def module_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.mark.timeout(600)
def test_model_time_on_redis_server(module_server: RedisServer) -> None:
    client = module_server.client()

    class RealTimedMachine(TimedRegistryMachine):
        margin_ms = 50
        batch_slack_ms = 300

        def new_client(self) -> Any:
            client.flushall()
            return client

        @initialize(ttls=st.sampled_from(REAL_TTL_ORDERS))
        def setup(self, ttls: tuple[float | None, ...]) -> None:
            self.setup_clients(ttls)

        @rule(seconds=st.sampled_from(REAL_STEPS))
        def sleep(self, seconds: float) -> None:
            self.pass_time(seconds)

    try:
        run_state_machine_as_test(
            RealTimedMachine,
            settings=settings(
                max_examples=15,
                stateful_step_count=25,
                deadline=None,
                phases=PHASES,
                # Shrinking sleeps too: report the first failure found, shrunk, and stop.
                report_multiple_bugs=False,
                suppress_health_check=SUPPRESS,
            ),
        )
    finally:
        client.close()


# ------------------------------------------------------------------ known bugs, as plain tests


@dataclass
class Env:
    """A fresh namespace's server and a way to let time pass there."""

    client: Any
    wait: Callable[[float], None]

    def registry(self, ttl: float | None) -> ThreadRegistry:
        return ThreadRegistry(self.client, namespace=NAMESPACE, ttl=ttl)


@pytest.fixture(params=["fake", "fake-plain", "redis"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    if request.param != "redis":
        clock = VirtualClock()
        fake_server = embedded.new_server() if request.param == "fake" else fakeredis.FakeServer()
        with clock.installed():
            yield Env(embedded.client_for(fake_server), clock.advance)
        return
    server: RedisServer = request.getfixturevalue("module_server")
    client = server.client()
    client.flushall()
    client.script_flush()
    try:
        yield Env(client, time.sleep)
    finally:
        client.close()


def test_chain_touched_for_an_hour_keeps_its_registered_id(env: Env) -> None:
    """(a) An id bound by a short-ttl client, then touched for an hour by another client,
    stays the chain's only id after the short ttl has passed."""
    a = env.registry(3600)
    b = env.registry(1)
    a.get_or_create(["warm", "up"])
    tid = str(uuid.uuid4())
    assert b.register_thread(tid, "console", "router") == tid
    assert a.get_or_create(["console", "router"]) == tid
    env.wait(1.5)
    assert a.get_or_create(["console", "router"]) == tid
    ids_of_chain = [i for i, chain in a.debug_dump().items() if chain == "console.router"]
    assert ids_of_chain == [tid]


def test_parent_bound_by_prune_outlives_its_child(env: Env) -> None:
    """(b) prune_for_response by a short-ttl client creates the parent of a long-lived
    chain: the parent must live as long as the child."""
    a = env.registry(3600)
    b = env.registry(1)
    w = a.get_or_create(["console", "router", "worker"])
    target, r = b.prune_for_response(w)
    assert target == "router" and r is not None
    env.wait(1.3)
    assert a.lookup(w) == "console.router.worker"
    rows = {row.thread_id: row for row in a.threads()}
    assert r in rows, f"{r} (console.router) expired while its child {w} lives"
    r_deadline, w_deadline = rows[r].deadline_ms, rows[w].deadline_ms
    assert w_deadline is not None
    assert r_deadline is None or r_deadline >= w_deadline
    target2, console = b.prune_for_response(r)
    assert target2 == "console" and console is not None


def test_ancestor_of_a_root_is_permanent(env: Env) -> None:
    """(c) A root never expires, so neither may its ancestor, even bound by a ttl client."""
    reg = env.registry(1)
    root = reg.initialize_root("acme")
    target, s = reg.prune_for_response(root)
    assert target == "system" and s is not None
    env.wait(1.3)
    assert reg.lookup(s) == "system"


def test_ancestor_created_after_a_permanent_descendant_is_permanent(env: Env) -> None:
    """(d) An ancestor created by a ttl client after its descendant was made permanent."""
    forever = env.registry(None)
    short = env.registry(1)
    forever.get_or_create(["jobs", "nightly"])
    j = short.get_or_create(["jobs"])
    env.wait(1.3)
    assert short.lookup(j) == "jobs"
