"""TTL garbage collection (SPEC 4.3) with real clocks: ttls of 1 to 2 s, short sleeps.

The sleeps are the point of these tests; each waits just past a deadline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from registry import ThreadRegistry
from registry.keys import namespace_keys
from tests.invariants import assert_one_chain_one_id

MakeRegistry = Callable[..., ThreadRegistry]

# The TTL logic lives in the scripts, which the sync and async classes send alike; to keep
# the sleeps few, this module runs the sync class only (test_behaviour covers both).
pytestmark = pytest.mark.parametrize("api", ["sync"])

TTL = 1.0
# Ancestors touched through a descendant get up to ttl/64 more, and the hashes' native
# expiry is set ttl/8 + ttl/64 beyond the latest deadline (docs/design.md, Expiry): the
# latest a namespace's hashes may outlive the ttl after their last write.
KEY_EXPIRY_BOUND_MS = TTL * 1000 * (1 + 1 / 8 + 2 / 64)
PAST_DEADLINE = TTL + 0.15  # sleep this long after the last write to be past every deadline


def mappings_in(client: Any, threads: str) -> int:
    """Mapping entries in a threads hash, expired or not; floors (fields that start with
    NUL: the deadline an ancestor created later must start with) and the placeholder
    field '' (which keeps the key present) are not mappings."""
    return sum(1 for field in client.hkeys(threads) if field and not field.startswith(b"\0"))


def overrides_in(client: Any, overrides: str) -> int:
    """Overrides in an overrides hash, without its placeholder field ''."""
    return sum(1 for field in client.hkeys(overrides) if field)


def new_id() -> str:
    return str(uuid.uuid4())


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_expiry_removes_only_expiring_mappings(make_registry: MakeRegistry, client: Any) -> None:
    reg = make_registry(namespace="acme", ttl=TTL)
    forever = make_registry(namespace="acme", ttl=None)
    root = reg.initialize_root("acme")
    table = reg.initialize_table_root("orders", "acme")
    a = reg.extend_chain(root, "a")
    b = reg.extend_chain(a, "b")
    worker = reg.extend_chain(table, "worker")
    plain = reg.get_or_create("p.q")
    bound = new_id()
    assert reg.register_thread(bound, "ext", "in") == bound
    kept = forever.extend_chain(root, "kept")
    kept_plain = forever.get_or_create("never.expires")
    assert len(reg.debug_dump()) == 9

    time.sleep(PAST_DEADLINE)

    # roots, table roots and ttl=None mappings outlive the ttl
    assert reg.debug_dump() == {
        root: "system.acme",
        table: "orders.acme",
        kept: "system.acme.kept",
        kept_plain: "never.expires",
    }
    assert reg.lookup(root) == "system.acme"
    assert reg.initialize_root("acme") == root
    assert reg.get_table_root("orders") == table
    assert reg.initialize_table_root("orders", "acme") == table
    assert reg.get_table_for_thread(table) == "orders"
    # expired mappings are indistinguishable from ones never created
    for gone in (a, b, worker, plain, bound):
        assert reg.lookup(gone) is None
        assert reg.lookup_hops(gone) is None
    assert reg.get_table_for_thread(worker) is None
    assert reg.prune_for_response(b) == (None, None)
    assert reg.lookup(reg.extend_chain(b, "next")) == "next"
    again = reg.get_or_create("p.q")
    assert reg.lookup(again) == "p.q"
    assert reg.register_thread(bound, "ext", "in") == bound  # id and chain are both free again
    assert reg.lookup(bound) == "system.acme.ext.in"
    assert reg.lookup(reg.extend_chain(root, "a")) == "system.acme.a"
    assert_one_chain_one_id(reg)


def test_touching_a_descendant_keeps_its_ancestors(make_registry: MakeRegistry, client: Any) -> None:
    reg = make_registry(namespace="acme", ttl=TTL)
    root = reg.initialize_root("acme")
    a = reg.extend_chain(root, "a")
    b = reg.extend_chain(a, "b")
    c = reg.extend_chain(b, "c")
    bound = new_id()
    reg.register_thread(bound, "ext", "in")
    sibling = reg.extend_chain(a, "sibling")
    unrelated = reg.get_or_create("u.v")
    chain_c = ["system", "acme", "a", "b", "c"]
    touches: list[Callable[[], object]] = [
        lambda: reg.get_or_create(chain_c),
        lambda: reg.extend_chain(b, "c"),
        lambda: reg.get_or_create(tuple(chain_c)),
    ]
    started = time.monotonic()
    for touch in touches:
        time.sleep(0.4)
        touch()  # only the descendant c is named
        assert reg.register_thread(bound, "ext", "in") == bound
    assert time.monotonic() - started > TTL + 0.1  # the first deadlines have passed

    assert reg.lookup(a) == "system.acme.a"
    assert reg.lookup(b) == "system.acme.a.b"
    assert reg.lookup(c) == "system.acme.a.b.c"
    assert reg.lookup(bound) == "system.acme.ext.in"
    assert reg.lookup(sibling) is None
    assert reg.lookup(unrelated) is None
    assert reg.prune_for_response(c) == ("b", b)
    assert set(reg.debug_dump()) == {root, a, b, c, bound}

    # nothing touched any more: every expiring mapping goes, and the namespace's expiring
    # hashes are given back by Redis itself (native expiry), without another call of ours
    meta, threads, overrides = namespace_keys("acme")
    assert client.exists(threads) == 1 and client.exists(overrides) == 1
    assert 0 < client.pttl(threads) <= KEY_EXPIRY_BOUND_MS
    assert 0 < client.pttl(overrides) <= KEY_EXPIRY_BOUND_MS
    time.sleep(PAST_DEADLINE)
    assert wait_until(lambda: client.dbsize() == 1), client.keys()  # counts without touching keys
    assert client.exists(threads) == 0 and client.exists(overrides) == 0
    assert client.exists(meta) == 1
    assert reg.debug_dump() == {root: "system.acme"}
    assert reg.lookup(a) is None and reg.lookup(c) is None


def test_a_touch_within_the_headroom_leaves_the_deadline(make_registry: MakeRegistry, client: Any) -> None:
    """A touch keeps a live thread's deadline when it lies within the headroom (ttl/64, at
    most 1 s) of now + ttl, and writes nothing; past that it moves the deadline to now + ttl
    (docs/design.md, Expiry)."""
    reg = make_registry(namespace="acme", ttl=32)  # headroom: 0.5 s
    root = reg.initialize_root("acme")
    router = reg.extend_chain(root, "router")
    tid = reg.extend_chain(router, "worker")
    chain = ["system", "acme", "router", "worker"]
    leaf = reg.extend_chain(tid, "leaf")
    _, threads, _ = namespace_keys("acme")

    def deadlines() -> dict[str, int | None]:
        return {row.thread_id: row.deadline_ms for row in reg.threads()}

    # tid, pushed by the leaf's walk, is due at the leaf's write + ttl + headroom.
    first, stored = deadlines(), client.hgetall(threads)
    created = time.monotonic()
    assert reg.extend_chain(router, "worker") == tid
    assert reg.get_or_create(chain) == tid
    assert reg.prune_for_response(leaf) == ("worker", tid)
    assert time.monotonic() - created < 0.5  # (well within the headroom)
    assert deadlines() == first
    assert client.hgetall(threads) == stored  # nothing was written

    time.sleep(1.1)  # now + ttl is past tid's deadline + the headroom: the next touch moves it
    assert reg.get_or_create(chain) == tid
    moved = deadlines()
    assert moved[tid] is not None and first[tid] is not None
    assert moved[tid] >= first[tid] + 1100 - 500
    assert moved[leaf] == first[leaf]  # a descendant is not touched
    assert moved[router] is not None and moved[router] >= moved[tid]  # the invariant


def test_a_chain_forwarded_within_its_parents_headroom_takes_the_parents_deadline(
    make_registry: MakeRegistry, client: Any
) -> None:
    """A thread made while its parent's deadline lies within the headroom (ttl/64, at
    most 1 s) below now + ttl takes the parent's deadline, and the parent is not written:
    a message forwarded hop to hop makes threads that share their first one's deadline
    (docs/design.md, Expiry). Past the headroom the parent is pushed as before."""
    reg = make_registry(namespace="acme", ttl=32)  # headroom: 0.5 s
    root = reg.initialize_root("acme")
    console = reg.extend_chain(root, "console")
    _, threads, _ = namespace_keys("acme")

    def deadlines() -> dict[str, int | None]:
        return {row.thread_id: row.deadline_ms for row in reg.threads()}

    started = time.monotonic()
    before = client.hgetall(threads)
    router = reg.extend_chain(console, "router")  # by extend_chain
    greeter = reg.get_or_create(["system", "acme", "console", "router", "greeter"])  # by get_or_create
    tid = reg.register_thread(new_id(), "console", "auditor")  # by register_thread
    assert time.monotonic() - started < 0.4  # (well within the headroom)
    after, dl = client.hgetall(threads), deadlines()
    assert dl[router] == dl[console] and dl[greeter] == dl[console] and dl[tid] == dl[console]
    assert after[console.encode()] == before[console.encode()]  # the parent was not written

    time.sleep(0.7)  # now past the headroom: a new child pushes its parent, as before
    leaf = reg.extend_chain(greeter, "leaf")
    moved = deadlines()
    assert moved[leaf] is not None and dl[greeter] is not None and moved[leaf] >= dl[greeter] + 700 - 100
    assert moved[greeter] is not None and moved[greeter] >= moved[leaf]  # the invariant
    assert moved[console] is not None and moved[console] >= moved[greeter]


def test_ttl_none_threads_do_not_give_the_hashes_an_expiry(make_registry: MakeRegistry, client: Any) -> None:
    reg = make_registry(namespace="acme", ttl=None)
    reg.get_or_create("a.b")
    reg.register_thread(new_id(), "c", "d")
    assert reg.threads()[0].deadline_ms is None
    for key in namespace_keys("acme"):
        assert client.pttl(key) in (-1, -2)  # no expiry, or no key at all


GC_TTL = 2.0  # the fills below must be written well within it, even on a busy machine


def _fill_with_expiring(
    make_registry: MakeRegistry, client: Any, namespace: str, count: int
) -> ThreadRegistry:
    """`count` expiring mappings (every tenth with an external id, so with an override)
    next to one long-lived keeper ("keeper"), so the threads hash itself stays and only
    gc can reclaim the expired entries.

    On a real server over 512 entries, so the hash is a hashtable (HSCAN walks it in
    steps) rather than a listpack (HSCAN returns a listpack whole). The sweep cursor kept
    in meta is left in the middle of the hash, as any busy namespace leaves it."""
    meta, threads, overrides = namespace_keys(namespace)
    reg = make_registry(namespace=namespace, ttl=GC_TTL)
    make_registry(namespace=namespace, ttl=3600).get_or_create("keeper")
    for i in range(count):
        if i % 10 == 0:
            reg.register_thread(new_id(), "ext", f"t{i}")
        else:
            reg.get_or_create(f"bulk.t{i}")
    # Every 32nd write of a client is a sweep turn: move the cursor off the start (the
    # fill's steps found nothing expired, so the sweep backed off: end that first).
    client.hdel(meta, "sk")
    for _ in range(64):
        if client.hget(meta, "cur") not in (None, b"0"):
            break
        reg.get_or_create("bulk.t1")
    assert client.hget(meta, "cur") not in (None, b"0")
    assert overrides_in(client, overrides) >= count // 10
    assert mappings_in(client, threads) == count + 1, "the fill took longer than the ttl"
    return reg


def test_gc_reclaims_expired_mappings(make_registry: MakeRegistry, client: Any, backend: str) -> None:
    count = 600 if backend == "redis" else 200  # fakeredis is slower; any size steps there
    in_steps = _fill_with_expiring(make_registry, client, "steps", count)
    in_one_call = _fill_with_expiring(make_registry, client, "one-call", count)
    time.sleep(GC_TTL + 0.15)

    # gc(limit) works in bounded steps; called until it returns 0 it reclaims everything
    _, threads, overrides = namespace_keys("steps")
    expired = mappings_in(client, threads) - 1
    first = in_steps.gc(limit=20)
    assert 0 < first < 100  # steps sized by the limit, not a sweep of everything
    assert mappings_in(client, threads) == expired + 1 - first
    total, calls = first, 0
    while True:
        n = in_steps.gc()
        total += n
        calls += 1
        if n == 0:
            break
        assert calls < 10
    assert total == expired
    assert mappings_in(client, threads) == 1
    assert overrides_in(client, overrides) == 0  # gone with their entries
    assert set(in_steps.debug_dump().values()) == {"keeper"}
    assert in_steps.gc() == 0

    # one call with a limit above the number expired reclaims them all, wherever
    # earlier sweeps left the cursor
    _, threads, _ = namespace_keys("one-call")
    expired = mappings_in(client, threads) - 1
    reclaimed = in_one_call.gc(limit=1000)
    assert (reclaimed, mappings_in(client, threads)) == (expired, 1), "gc(limit=1000) stopped early"
    assert set(in_one_call.debug_dump().values()) == {"keeper"}


def _worker_beside_expiring(
    make_registry: MakeRegistry, namespace: str, count: int
) -> tuple[ThreadRegistry, str, str]:
    """console.router.worker (ttl an hour) beside `count` chains that expire after GC_TTL:
    (the long-lived registry, the router's id, the worker's id)."""
    live = make_registry(namespace=namespace, ttl=3600)
    router = live.extend_chain(live.get_or_create("console"), "router")
    worker = live.extend_chain(router, "worker")
    batch = make_registry(namespace=namespace, ttl=GC_TTL).batch()
    for i in range(count):
        batch.get_or_create(f"bulk.t{i}")
    batch.execute()
    return live, router, worker


def test_a_write_answered_on_its_hot_path_still_sweeps(make_registry: MakeRegistry, client: Any) -> None:
    """A write that carries a sweep count (every 32nd write of a client) and is answered
    on its script's hot path (a touch within the headroom, or a new chain bound there)
    answers as without one, and sweeps: expired entries go, and the cursor moves."""
    from registry.scripts import script

    namespace = "hot-sweep"
    meta, threads, _ = namespace_keys(namespace)
    live, router, worker = _worker_beside_expiring(make_registry, namespace, 300)
    time.sleep(GC_TTL + 0.15)
    # The fill's sweeps found nothing expired, so the next turns would pass without a
    # step (the backoff, test_sweeps_back_off_while_nothing_expires): start without it.
    client.hdel(meta, "sk")
    before = mappings_in(client, threads)
    keys = namespace_keys(namespace)
    ext = script("extend_chain")
    client.script_load(ext.source)
    swept = []
    for hop, known in (("worker", worker), ("fresh", None)):  # a touch, then a new chain
        answer = client.evalsha(ext.sha, 3, *keys, "3600000", str(uuid.uuid4()), "64", router, hop, "")
        answer = answer.decode() if isinstance(answer, bytes) else answer
        if known is not None:
            assert answer == known
        else:
            assert live.lookup_hops(answer) == ("console", "router", "fresh")
        swept.append(mappings_in(client, threads))
    assert swept[0] < before  # the touch swept expired mappings
    assert swept[1] < swept[0] + 1  # the new chain's sweep reclaimed as much as it added, or more
    assert client.hget(meta, "cur") is not None  # and the sweep cursor moved on
    assert live.lookup(worker) == "console.router.worker"


def test_sweeps_back_off_while_nothing_expires(make_registry: MakeRegistry, client: Any) -> None:
    """A sweep turn whose step removes nothing makes the namespace's next 1, then 3, then
    7 sweep turns pass without a step; once entries expire, a step within the next 8
    turns reclaims some, and from then on every turn takes its step again."""
    from registry.scripts import script

    namespace = "backoff"
    meta, threads, _ = namespace_keys(namespace)
    # (several pages of 64: each step moves the cursor)
    live, router, worker = _worker_beside_expiring(make_registry, namespace, 600)
    client.hdel(meta, "cur", "sk")  # (the fill's own sweeps: start from a known state)
    keys = namespace_keys(namespace)
    ext = script("extend_chain")
    client.script_load(ext.source)

    def turn() -> tuple[bool, int]:
        """One sweep turn (a touch answered on its hot path, carrying a sweep count of
        64): whether it took a step (moved the cursor), and the mappings left."""
        before = client.hget(meta, "cur")
        answer = client.evalsha(ext.sha, 3, *keys, "3600000", str(uuid.uuid4()), "64", router, "worker", "")
        assert (answer.decode() if isinstance(answer, bytes) else answer) == worker
        return client.hget(meta, "cur") != before, mappings_in(client, threads)

    stepped = [turn()[0] for _ in range(23)]
    # step, 1 skipped, step, 3 skipped, step, 7 skipped, step, then 7 skipped again
    assert stepped == [True, False, True] + [False] * 3 + [True] + [False] * 7 + [True] + [False] * 7 + [True]
    assert mappings_in(client, threads) == 603  # nothing expired, nothing removed

    time.sleep(GC_TTL + 0.15)  # the 600 expire; the namespace is 7 turns from its next step
    turns = [turn() for _ in range(12)]
    first = next(k for k, (took, _) in enumerate(turns) if took)
    assert first <= 7, "a step within the next 8 turns"
    assert turns[first][1] < 603, "that step reclaimed expired mappings"
    # (the next three turns examine at most 192 more of the 600 expired entries)
    after = turns[first + 1 : first + 4]
    assert len(after) == 3 and all(took for took, _ in after), "every turn steps again once steps reclaim"
    left = [n for _, n in turns[first : first + 4]]
    assert left == sorted(left, reverse=True) and len(set(left)) == 4, f"each step reclaims: {left}"

    assert live.lookup(worker) == "console.router.worker"


@pytest.mark.parametrize("cursor", ["nonsense", "L", "Lx", "-1", "C"])
def test_a_sweep_cursor_the_library_did_not_write_starts_a_new_pass(
    make_registry: MakeRegistry, client: Any, cursor: str
) -> None:
    """A write whose sweep turn finds a cursor in meta that no step wrote (edited by
    hand, or by a bug) answers as usual and sweeps from the start, rather than failing
    after its changes (HSCAN refuses such a cursor)."""
    from registry.scripts import script

    namespace = "bad-cursor"
    meta = namespace_keys(namespace)[0]
    reg = make_registry(namespace=namespace, ttl=3600)
    router = reg.extend_chain(reg.get_or_create("console"), "router")
    client.hset(meta, "cur", cursor)
    client.hdel(meta, "sk")
    keys = namespace_keys(namespace)
    ext = script("extend_chain")
    client.script_load(ext.source)
    for hop in ("fresh", "fresh"):  # a new chain (full path), then a touch (hot path)
        answer = client.evalsha(ext.sha, 3, *keys, "3600000", str(uuid.uuid4()), "64", router, hop, "")
        assert reg.lookup_hops(answer.decode() if isinstance(answer, bytes) else answer) == (
            "console",
            "router",
            "fresh",
        )
        assert client.hget(meta, "cur") in (None, b"0") or client.hget(meta, "cur") != cursor.encode()
        client.hset(meta, "cur", cursor)
        client.hdel(meta, "sk")


def _memory(client: Any) -> int:
    """What the keys hold (MEMORY USAGE, every key). The server's used_memory also moves
    with client buffers and its own tables, which Redis 8 and Valkey do not shrink at
    once when keys go, so it cannot tell whether the registry gave its memory back."""
    return sum(int(client.memory_usage(key, samples=0) or 0) for key in client.scan_iter(count=1000))


@pytest.mark.parametrize("backend", ["redis"])  # memory is measured on a real server only
def test_expired_memory_is_given_back(make_registry: MakeRegistry, client: Any) -> None:
    count = 2000
    by_gc = make_registry(namespace="by-gc", ttl=TTL)
    keeper = make_registry(namespace="by-gc", ttl=3600)
    by_expiry = make_registry(namespace="by-expiry", ttl=TTL)
    keeper.initialize_root("acme")
    kept = keeper.get_or_create("keeper")
    by_expiry.initialize_root("acme")
    for reg in (by_gc, by_expiry):  # load every script used below before the baseline
        reg.register_thread(new_id(), "warm", "up")
        reg.cleanup(reg.get_or_create("warm.x"))
        reg.lookup(new_id())
        reg.gc()
    baseline = _memory(client)

    for i in range(count):
        by_expiry.get_or_create(f"bulk.t{i}")
    for i in range(count):
        if i % 10 == 0:
            by_gc.register_thread(new_id(), "ext", f"t{i}")
        else:
            by_gc.get_or_create(f"bulk.t{i}")
    grown = _memory(client) - baseline
    assert grown > 150_000  # the threads really took memory

    time.sleep(PAST_DEADLINE)
    for _ in range(20):
        if by_gc.gc() == 0:
            break
    _, expiry_threads, expiry_overrides = namespace_keys("by-expiry")
    # 2 metas + by-gc's threads and overrides (which exist together)
    assert wait_until(lambda: client.dbsize() == 4), client.keys()
    assert client.exists(expiry_threads) == 0 and client.exists(expiry_overrides) == 0
    _, gc_threads, gc_overrides = namespace_keys("by-gc")
    assert mappings_in(client, gc_threads) == 1
    assert overrides_in(client, gc_overrides) == 0
    assert client.memory_usage(gc_threads) < 32_000  # one entry (the table may not shrink at once)
    left = _memory(client) - baseline
    assert left < 32_000, f"{left} bytes still held after reclaiming (grew by {grown})"
    assert by_gc.debug_dump() == {keeper.root_uuid: "system.acme", kept: "keeper"}
