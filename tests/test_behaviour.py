"""Behaviour of every public method and property (SPEC 3, 4.1, 4.4), on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import registry.default
from registry import (
    RegistryError,
    RootConflictError,
    ThreadIdConflictError,
    ThreadInfo,
    ThreadRegistry,
    get_registry,
    reset_registry,
)
from registry.keys import namespace_keys
from tests.conftest import keyspace
from tests.invariants import assert_one_chain_one_id
from tests.servers import free_port

RUN_ON_CLUSTER = True  # the behaviour suite also runs on Redis Cluster (tests/conftest.py)

MakeRegistry = Callable[..., ThreadRegistry]


def is_canonical_uuid(value: object) -> bool:
    return isinstance(value, str) and str(uuid.UUID(value)) == value


def new_id() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- roots


def test_root_properties_before_initialize(reg: ThreadRegistry) -> None:
    assert reg.root_uuid is None
    assert reg.root_chain == "system"
    assert reg.is_shared is True


def test_initialize_root_creates_system_organism(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    assert is_canonical_uuid(root)
    assert reg.root_uuid == root
    assert reg.root_chain == "system.acme"
    assert reg.lookup(root) == "system.acme"
    assert reg.lookup_hops(root) == ("system", "acme")
    assert reg.debug_dump() == {root: "system.acme"}


def test_initialize_root_default_organism(reg: ThreadRegistry) -> None:
    root = reg.initialize_root()
    assert reg.lookup(root) == "system.organism"
    assert reg.root_chain == "system.organism"


def test_initialize_root_is_idempotent(reg: ThreadRegistry) -> None:
    first = reg.initialize_root("acme")
    dump = reg.debug_dump()
    assert reg.initialize_root("acme") == first
    assert reg.initialize_root("acme") == first
    assert reg.debug_dump() == dump


def test_initialize_root_same_id_from_two_instances(make_registry: MakeRegistry) -> None:
    one = make_registry(namespace="acme")
    two = make_registry(namespace="acme", ttl=None)
    root = one.initialize_root("acme")
    assert two.root_uuid is None  # the instance only knows what it was told
    assert two.initialize_root("acme") == root
    assert two.root_uuid == root
    assert two.root_chain == "system.acme"
    assert one.debug_dump() == two.debug_dump() == {root: "system.acme"}


def test_root_is_the_thread_of_its_chain(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    assert reg.get_or_create("system.acme") == root
    assert reg.get_or_create(["system", "acme"]) == root


def test_root_adopts_an_existing_thread_of_its_chain(reg: ThreadRegistry) -> None:
    existing = reg.get_or_create("system.acme")
    assert reg.initialize_root("acme") == existing
    assert reg.debug_dump() == {existing: "system.acme"}


def test_initialize_root_conflict(make_registry: MakeRegistry, client: Any) -> None:
    one = make_registry(namespace="acme")
    other = make_registry(namespace="acme")
    root = one.initialize_root("acme")
    before = keyspace(client)
    with pytest.raises(RootConflictError) as info:
        one.initialize_root("globex")
    assert isinstance(info.value, RegistryError)
    assert "globex" in str(info.value)
    with pytest.raises(RootConflictError):
        other.initialize_root("globex")
    assert keyspace(client) == before
    assert one.root_uuid == root and one.root_chain == "system.acme"
    assert other.root_uuid is None and other.root_chain == "system"
    assert other.initialize_root("acme") == root


# ---------------------------------------------------------------- get_or_create / lookup


def test_get_or_create_str_splits_on_dots(reg: ThreadRegistry) -> None:
    tid = reg.get_or_create("console.router.greeter")
    assert is_canonical_uuid(tid)
    assert reg.lookup(tid) == "console.router.greeter"
    assert reg.lookup_hops(tid) == ("console", "router", "greeter")
    assert reg.get_or_create(["console", "router", "greeter"]) == tid
    assert reg.get_or_create(("console", "router", "greeter")) == tid


def test_get_or_create_sequence_taken_verbatim(reg: ThreadRegistry) -> None:
    dotted = reg.get_or_create("calculator.add")
    verbatim = reg.get_or_create(["calculator.add"])
    assert dotted != verbatim
    assert reg.lookup_hops(dotted) == ("calculator", "add")
    assert reg.lookup_hops(verbatim) == ("calculator.add",)
    assert reg.lookup(verbatim) == "calculator.add"


def test_get_or_create_same_chain_same_id(reg: ThreadRegistry, make_registry: MakeRegistry) -> None:
    tid = reg.get_or_create("a.b.c")
    assert reg.get_or_create("a.b.c") == tid
    assert make_registry(namespace="acme").get_or_create("a.b.c") == tid
    assert make_registry(namespace="acme", ttl=None).get_or_create("a.b.c") == tid
    assert reg.debug_dump() == {tid: "a.b.c"}


def test_a_new_chain_respects_every_claim_on_its_derived_id(
    reg: ThreadRegistry, make_registry: MakeRegistry, client: Any
) -> None:
    """The scripts bind a new chain on their hot path only when nothing else claims its
    derived id; each claim sends them the full way. A chain bound to an external id (an
    override), a permanent chain, and a chain under a permanent floor (an ancestor of a
    ttl=None thread) keep what they have, through extend_chain and get_or_create alike."""
    forever = make_registry(namespace="acme", ttl=None)
    root = reg.initialize_root("acme")
    console = reg.extend_chain(root, "console")
    # An override: the chain is bound to an id from outside.
    tid = new_id()
    assert reg.register_thread(tid, "console", "router") == tid
    assert reg.extend_chain(console, "router") == tid
    assert reg.get_or_create("system.acme.console.router") == tid
    # A permanent mapping of the chain.
    mailer = forever.get_or_create("system.acme.console.mailer")
    assert reg.extend_chain(console, "mailer") == mailer
    assert reg.get_or_create("system.acme.console.mailer") == mailer
    # A permanent floor: an ancestor of a ttl=None thread, made later, is permanent.
    forever.get_or_create("system.acme.console.desk.clerk")
    desk = reg.extend_chain(console, "desk")
    assert reg.get_or_create("system.acme.console.desk") == desk
    rows = {row.thread_id: row for row in reg.threads()}
    assert rows[mailer].deadline_ms is None and rows[desk].deadline_ms is None
    assert rows[tid].deadline_ms is not None
    assert_one_chain_one_id(reg)


def test_get_or_create_different_chains_different_ids(reg: ThreadRegistry) -> None:
    chains = ["a", "a.b", "a.b.c", "b.a", "a.c", "ab", "a.bc", "b"]
    ids = [reg.get_or_create(c) for c in chains]
    assert len(set(ids)) == len(chains)
    assert reg.debug_dump() == dict(zip(ids, chains, strict=True))


def test_get_or_create_does_not_create_ancestors(reg: ThreadRegistry) -> None:
    tid = reg.get_or_create("a.b.c")
    assert reg.debug_dump() == {tid: "a.b.c"}


def test_lookup_unknown_and_malformed_ids(reg: ThreadRegistry) -> None:
    reg.get_or_create("a.b")
    for bad in (new_id(), "", "nope", "not-a-uuid-at-all-but-36-chars-long", new_id().replace("-", "")):
        assert reg.lookup(bad) is None
        assert reg.lookup_hops(bad) is None


def test_lookup_accepts_uppercase_id(reg: ThreadRegistry) -> None:
    tid = reg.get_or_create("a.b")
    assert reg.lookup(tid.upper()) == "a.b"
    assert reg.lookup_hops(tid.upper()) == ("a", "b")


def test_reads_with_malformed_id_make_no_round_trip() -> None:
    # A client for a port nobody listens on: any round trip would raise ConnectionError.
    dead = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    reg = ThreadRegistry(dead, namespace="acme")
    assert reg.lookup("garbage") is None
    assert reg.lookup_hops("garbage") is None
    assert reg.get_table_for_thread("garbage") is None
    assert reg.prune_for_response("garbage") == (None, None)
    assert reg.cleanup("garbage") is None
    with pytest.raises(redis.ConnectionError):  # proves the client really cannot reach a server
        reg.lookup(new_id())
    dead.close()


def test_reads_never_write(reg: ThreadRegistry, client: Any) -> None:
    root = reg.initialize_root("acme")
    a = reg.extend_chain(root, "a")
    table = reg.initialize_table_root("orders", "acme")
    reg.extend_chain(table, "w")
    before = keyspace(client)
    assert reg.lookup(a) == "system.acme.a"
    assert reg.lookup(new_id()) is None
    assert reg.lookup_hops(a) == ("system", "acme", "a")
    assert reg.get_table_root("orders") == table
    assert reg.get_table_root("missing") is None
    assert reg.get_table_for_thread(table) == "orders"
    assert reg.get_table_for_thread(new_id()) is None
    reg.debug_dump()
    reg.threads()
    assert keyspace(client) == before


# ---------------------------------------------------------------- extend_chain


def test_extend_chain_appends_one_hop(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    a = reg.extend_chain(root, "console")
    b = reg.extend_chain(a, "router")
    assert reg.lookup(a) == "system.acme.console"
    assert reg.lookup(b) == "system.acme.console.router"
    assert reg.extend_chain(a, "router") == b
    assert reg.get_or_create("system.acme.console.router") == b
    assert len({root, a, b}) == 3


def test_extend_chain_of_unknown_id_gives_one_hop_chain(reg: ThreadRegistry) -> None:
    reg.initialize_root("acme")
    tid = reg.extend_chain(new_id(), "router")
    assert reg.lookup(tid) == "router"
    assert reg.lookup_hops(tid) == ("router",)
    assert reg.get_or_create(["router"]) == tid
    assert reg.extend_chain("not-a-uuid", "router") == tid


def test_extend_chain_distinct_hops_distinct_ids(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    ids = {reg.extend_chain(root, hop) for hop in ("a", "b", "c", "a.b")}
    assert len(ids) == 4


# ---------------------------------------------------------------- prune_for_response


def test_prune_for_response_returns_caller_and_its_thread(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    console = reg.extend_chain(root, "console")
    router = reg.extend_chain(console, "router")
    greeter = reg.extend_chain(router, "greeter")
    assert reg.prune_for_response(greeter) == ("router", router)
    assert reg.prune_for_response(router) == ("console", console)
    assert reg.prune_for_response(console) == ("acme", root)
    # the pruned thread itself is left as it was
    assert reg.lookup(greeter) == "system.acme.console.router.greeter"


def test_prune_for_response_creates_shorter_chain_when_missing(reg: ThreadRegistry) -> None:
    tid = reg.get_or_create("x.y.z")
    target, parent = reg.prune_for_response(tid)
    assert target == "y"
    assert parent is not None and parent != tid
    assert reg.lookup(parent) == "x.y"
    assert reg.get_or_create("x.y") == parent
    assert reg.debug_dump() == {tid: "x.y.z", parent: "x.y"}


def test_prune_for_response_unknown_id(reg: ThreadRegistry, client: Any) -> None:
    reg.get_or_create("a.b")
    before = keyspace(client)
    assert reg.prune_for_response(new_id()) == (None, None)
    assert reg.prune_for_response("bogus") == (None, None)
    assert keyspace(client) == before


def test_prune_for_response_one_hop_chain_removes_mapping(reg: ThreadRegistry) -> None:
    keep = reg.get_or_create("keep.me")
    solo = reg.get_or_create(["solo"])
    assert reg.prune_for_response(solo) == (None, None)
    assert reg.lookup(solo) is None
    assert reg.debug_dump() == {keep: "keep.me"}
    assert reg.prune_for_response(solo) == (None, None)


def test_prune_for_response_one_hop_registered_id_removed_both_ways(reg: ThreadRegistry) -> None:
    tid = reg.extend_chain(new_id(), "solo")  # one-hop chain
    assert reg.prune_for_response(tid) == (None, None)
    assert reg.lookup(tid) is None
    assert reg.debug_dump() == {}


# ---------------------------------------------------------------- start_chain


def test_start_chain_is_get_or_create_of_two_hops(reg: ThreadRegistry) -> None:
    tid = reg.start_chain("console", "router")
    assert reg.lookup(tid) == "console.router"
    assert reg.start_chain("console", "router") == tid
    assert reg.get_or_create(["console", "router"]) == tid
    assert reg.start_chain("router", "console") != tid
    assert reg.prune_for_response(tid) == ("console", reg.get_or_create(["console"]))


# ---------------------------------------------------------------- register_thread


def test_register_thread_under_root(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    tid = new_id()
    assert reg.register_thread(tid, "console", "router") == tid
    assert reg.lookup(tid) == "system.acme.console.router"
    assert reg.get_or_create("system.acme.console.router") == tid
    assert reg.prune_for_response(tid) == ("console", reg.get_or_create("system.acme.console"))
    assert reg.lookup(root) == "system.acme"


def test_register_thread_uses_root_another_instance_created(make_registry: MakeRegistry) -> None:
    make_registry(namespace="acme").initialize_root("acme")
    fresh = make_registry(namespace="acme")  # never called initialize_root itself
    tid = new_id()
    assert fresh.register_thread(tid, "console", "router") == tid
    assert fresh.lookup(tid) == "system.acme.console.router"


def test_register_thread_without_root(reg: ThreadRegistry) -> None:
    tid = new_id()
    assert reg.register_thread(tid, "console", "router") == tid
    assert reg.lookup(tid) == "console.router"
    assert reg.start_chain("console", "router") == tid
    assert reg.debug_dump() == {tid: "console.router"}


def test_register_thread_same_binding_again_returns_the_id(reg: ThreadRegistry) -> None:
    reg.initialize_root("acme")
    tid = new_id()
    reg.register_thread(tid, "console", "router")
    dump = reg.debug_dump()
    assert reg.register_thread(tid, "console", "router") == tid
    assert reg.register_thread(tid.upper(), "console", "router") == tid
    assert reg.debug_dump() == dump


def test_register_thread_id_bound_elsewhere_is_a_conflict(reg: ThreadRegistry, client: Any) -> None:
    """An id bound to console.router must not come back for console.greeter: the caller
    would route greeter traffic with an id that means router (it used to)."""
    reg.initialize_root("acme")
    tid = new_id()
    reg.register_thread(tid, "console", "router")
    before = keyspace(client)
    with pytest.raises(ThreadIdConflictError, match=r"bound to system\.acme\.console\.router"):
        reg.register_thread(tid, "console", "greeter")
    assert keyspace(client) == before
    assert reg.lookup(tid) == "system.acme.console.router"


def test_register_thread_derived_id_bound_elsewhere_is_a_conflict(reg: ThreadRegistry) -> None:
    existing = reg.get_or_create("a.b.c")
    dump = reg.debug_dump()
    with pytest.raises(ThreadIdConflictError):
        reg.register_thread(existing, "x", "y")
    assert reg.lookup(existing) == "a.b.c"
    assert reg.debug_dump() == dump


def test_register_thread_chain_with_another_id(reg: ThreadRegistry) -> None:
    existing = reg.start_chain("console", "router")
    dump = reg.debug_dump()
    tid = new_id()
    assert reg.register_thread(tid, "console", "router") == existing
    assert reg.lookup(tid) is None
    assert reg.debug_dump() == dump
    # the refused id stays free for another chain
    assert reg.register_thread(tid, "console", "mailer") == tid
    assert reg.lookup(tid) == "console.mailer"


def test_register_thread_chain_registered_with_another_id(reg: ThreadRegistry) -> None:
    """The usual registration (a root, a live parent: the script's hot path) of a chain
    another external id holds returns that id: its override is a claim, never overwritten."""
    reg.extend_chain(reg.initialize_root("acme"), "console")
    first, second = new_id(), new_id()
    assert reg.register_thread(first, "console", "mailer") == first
    dump = reg.debug_dump()
    assert reg.register_thread(second, "console", "mailer") == first
    assert reg.lookup(second) is None
    assert reg.lookup(first) == "system.acme.console.mailer"
    assert reg.debug_dump() == dump


def test_register_thread_uppercase_id_normalized(reg: ThreadRegistry) -> None:
    tid = new_id()
    assert reg.register_thread(tid.upper(), "console", "router") == tid
    assert reg.lookup(tid) == "console.router"
    assert reg.lookup(tid.upper()) == "console.router"
    assert reg.register_thread(tid, "console", "router") == tid
    assert reg.debug_dump() == {tid: "console.router"}


def test_register_thread_then_extend_and_prune(reg: ThreadRegistry) -> None:
    reg.initialize_root("acme")
    tid = new_id()
    reg.register_thread(tid, "console", "router")
    child = reg.extend_chain(tid, "greeter")
    assert reg.lookup(child) == "system.acme.console.router.greeter"
    assert reg.prune_for_response(child) == ("router", tid)


# ---------------------------------------------------------------- table roots


def test_initialize_table_root(reg: ThreadRegistry, make_registry: MakeRegistry) -> None:
    table = reg.initialize_table_root("orders", "acme")
    assert is_canonical_uuid(table)
    assert reg.lookup(table) == "orders.acme"
    assert reg.lookup_hops(table) == ("orders", "acme")
    assert reg.initialize_table_root("orders", "acme") == table
    assert make_registry(namespace="acme").initialize_table_root("orders", "acme") == table
    assert reg.get_table_root("orders") == table
    assert make_registry(namespace="acme").get_table_root("orders") == table
    assert reg.get_table_root("acme") is None
    assert reg.get_table_root("missing") is None
    assert reg.get_or_create("orders.acme") == table
    assert reg.root_uuid is None  # a table root is not the namespace root


def test_table_roots_are_independent_of_each_other_and_the_root(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    orders = reg.initialize_table_root("orders", "acme")
    users = reg.initialize_table_root("users", "acme")
    assert len({root, orders, users}) == 3
    assert reg.get_table_root("orders") == orders
    assert reg.get_table_root("users") == users
    assert reg.debug_dump() == {root: "system.acme", orders: "orders.acme", users: "users.acme"}


def test_get_table_for_thread(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    table = reg.initialize_table_root("orders", "acme")
    worker = reg.extend_chain(table, "worker")
    deeper = reg.extend_chain(worker, "sub")
    assert reg.get_table_for_thread(table) == "orders"
    assert reg.get_table_for_thread(worker) == "orders"
    assert reg.get_table_for_thread(deeper) == "orders"
    assert reg.get_table_for_thread(deeper.upper()) == "orders"
    assert reg.get_table_for_thread(root) is None
    assert reg.get_table_for_thread(reg.extend_chain(root, "x")) is None
    assert reg.get_table_for_thread(reg.get_or_create("plain.chain")) is None
    assert reg.get_table_for_thread(new_id()) is None
    assert reg.get_table_for_thread("malformed") is None


def test_initialize_table_root_conflict(reg: ThreadRegistry, client: Any) -> None:
    table = reg.initialize_table_root("orders", "acme")
    before = keyspace(client)
    with pytest.raises(RootConflictError) as info:
        reg.initialize_table_root("orders", "globex")
    assert "globex" in str(info.value)
    assert keyspace(client) == before
    assert reg.get_table_root("orders") == table
    # another table may use the other organism
    assert reg.lookup(reg.initialize_table_root("users", "globex")) == "users.globex"


# ---------------------------------------------------------------- cleanup


def test_cleanup_removes_both_directions(reg: ThreadRegistry) -> None:
    reg.initialize_root("acme")
    tid = new_id()
    reg.register_thread(tid, "console", "router")
    reg.cleanup(tid)
    assert reg.lookup(tid) is None
    assert tid not in reg.debug_dump()
    again = reg.get_or_create("system.acme.console.router")
    assert again != tid  # the chain no longer points at the removed id
    assert reg.lookup(again) == "system.acme.console.router"


def test_cleanup_keeps_descendants(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    a = reg.extend_chain(root, "a")
    b = reg.extend_chain(a, "b")
    c = reg.extend_chain(b, "c")
    reg.cleanup(b)
    assert reg.lookup(b) is None
    assert reg.lookup(a) == "system.acme.a"
    assert reg.lookup(c) == "system.acme.a.b.c"
    assert reg.debug_dump() == {root: "system.acme", a: "system.acme.a", c: "system.acme.a.b.c"}
    assert reg.get_or_create("system.acme.a.b.c") == c
    target, parent = reg.prune_for_response(c)
    assert target == "b"
    assert reg.lookup(parent) == "system.acme.a.b"  # recreated on demand


def test_cleanup_unknown_and_malformed_is_a_no_op(reg: ThreadRegistry, client: Any) -> None:
    reg.get_or_create("a.b")
    before = keyspace(client)
    assert reg.cleanup(new_id()) is None
    assert reg.cleanup("malformed") is None
    assert keyspace(client) == before


# ---------------------------------------------------------------- debug_dump / threads


def test_debug_dump_lists_every_live_mapping(reg: ThreadRegistry) -> None:
    assert reg.debug_dump() == {}
    root = reg.initialize_root("acme")
    a = reg.extend_chain(root, "console")
    b = reg.extend_chain(a, "calculator.add")
    table = reg.initialize_table_root("orders", "acme")
    tid = new_id()
    reg.register_thread(tid, "ext", "in")
    plain = reg.get_or_create("x.y")
    assert reg.debug_dump() == {
        root: "system.acme",
        a: "system.acme.console",
        b: "system.acme.console.calculator.add",
        table: "orders.acme",
        tid: "system.acme.ext.in",
        plain: "x.y",
    }


def test_debug_dump_many_threads(reg: ThreadRegistry) -> None:
    ids = {reg.get_or_create(f"bulk.t{i}"): f"bulk.t{i}" for i in range(1500)}
    assert reg.debug_dump() == ids


def test_threads_rows(reg: ThreadRegistry, make_registry: MakeRegistry) -> None:
    root = reg.initialize_root("acme")
    a = reg.extend_chain(root, "calculator.add")
    forever = make_registry(namespace="acme", ttl=None).get_or_create("never.expires")
    rows = {row.thread_id: row for row in reg.threads()}
    assert set(rows) == {root, a, forever}
    assert all(isinstance(row, ThreadInfo) for row in rows.values())
    assert rows[root].hops == ("system", "acme") and rows[root].deadline_ms is None
    assert rows[a].hops == ("system", "acme", "calculator.add")
    assert rows[a].chain == "system.acme.calculator.add"
    assert isinstance(rows[a].deadline_ms, int)
    assert rows[forever].deadline_ms is None


# ---------------------------------------------------------------- clear


def test_clear(reg: ThreadRegistry, client: Any) -> None:
    root = reg.initialize_root("acme")
    a = reg.extend_chain(root, "a")
    reg.initialize_table_root("orders", "acme")
    reg.register_thread(new_id(), "x", "y")
    reg.clear()
    assert reg.debug_dump() == {}
    assert reg.lookup(root) is None and reg.lookup(a) is None
    assert reg.get_table_root("orders") is None
    assert reg.root_uuid is None
    assert reg.root_chain == "system"
    assert reg.is_shared is True
    assert not [k for k in keyspace(client) if b"{acme}" in k]
    # the namespace starts over: another organism is no conflict now
    other = reg.initialize_root("globex")
    assert reg.lookup(other) == "system.globex"
    reg.clear()
    reg.clear()
    assert reg.debug_dump() == {}


# ---------------------------------------------------------------- gc


def test_gc_with_nothing_expired(reg: ThreadRegistry, client: Any) -> None:
    assert reg.gc() == 0
    reg.initialize_root("acme")
    for i in range(50):
        reg.get_or_create(f"a.b{i}")
    dump = reg.debug_dump()
    assert reg.gc() == 0
    assert reg.gc(limit=1) == 0
    assert reg.debug_dump() == dump


@pytest.mark.parametrize("limit", [0, -1, 1.5, "10", True])
def test_gc_rejects_bad_limit(reg: ThreadRegistry, limit: Any) -> None:
    with pytest.raises(ValueError):
        reg.gc(limit=limit)


# ---------------------------------------------------------------- retry safety (SPEC 4.4)


def test_every_call_is_retry_safe(reg: ThreadRegistry, client: Any) -> None:
    def twice(method: Callable[..., Any], *args: Any) -> Any:
        first = method(*args)
        dump = reg.debug_dump()
        meta_before = {k: v for k, v in client.hgetall(namespace_keys("acme")[0]).items() if k != b"cur"}
        second = method(*args)
        assert second == first, f"{method.__name__}{args!r}: {first!r} then {second!r}"
        assert reg.debug_dump() == dump, f"{method.__name__}{args!r} changed the state when repeated"
        meta_after = {k: v for k, v in client.hgetall(namespace_keys("acme")[0]).items() if k != b"cur"}
        assert meta_after == meta_before
        return first

    root = twice(reg.initialize_root, "acme")
    table = twice(reg.initialize_table_root, "orders", "acme")
    a = twice(reg.get_or_create, "system.acme.console")
    b = twice(reg.extend_chain, a, "router")
    twice(reg.extend_chain, new_id(), "lonely")
    c = twice(reg.start_chain, "cli", "router")
    tid = new_id()
    assert twice(reg.register_thread, tid, "ext", "in") == tid
    assert twice(reg.register_thread, new_id(), "ext", "in") == tid
    assert twice(reg.prune_for_response, b) == ("console", a)
    assert twice(reg.prune_for_response, c)[0] == "cli"
    solo = reg.get_or_create(["solo"])
    assert twice(reg.prune_for_response, solo) == (None, None)
    twice(reg.get_table_root, "orders")
    twice(reg.get_table_for_thread, reg.extend_chain(table, "w"))
    twice(reg.lookup, b)
    twice(reg.lookup_hops, b)
    twice(reg.cleanup, c)
    twice(reg.debug_dump)
    assert reg.lookup(root) == "system.acme"
    assert_one_chain_one_id(reg)
    twice(reg.clear)


# ---------------------------------------------------------------- SPEC 4.1 over a mixed workload


def test_one_chain_one_id_after_mixed_workload(reg: ThreadRegistry, make_registry: MakeRegistry) -> None:
    other = make_registry(namespace="acme", ttl=None)
    root = reg.initialize_root("acme")
    table = other.initialize_table_root("orders", "acme")
    frontier = [root, table]
    for i in range(40):
        parent = frontier[i % len(frontier)]
        frontier.append((reg if i % 2 else other).extend_chain(parent, f"hop{i % 7}"))
    for i in range(10):
        reg.register_thread(new_id(), f"ext{i % 3}", "in.box")
        other.start_chain(f"cli{i}", "router")
    for tid in frontier[5:15]:
        reg.prune_for_response(tid)
    for tid in frontier[20:25]:
        reg.cleanup(tid)
    dump = assert_one_chain_one_id(reg)
    assert dump == other.debug_dump()
    assert len(dump) > 40


# ---------------------------------------------------------------- process-wide instance


@pytest.mark.usefixtures("no_global_registry")
def test_get_registry_is_process_wide(client: Any) -> None:
    first = get_registry(client, namespace="proc", ttl=60)
    assert isinstance(first, ThreadRegistry)
    assert first.namespace == "proc"
    assert get_registry() is first
    assert get_registry(client, namespace="proc", ttl=60) is first  # the same settings again
    # another setting is not silently ignored: it names both values
    with pytest.raises(RegistryError, match=r"namespace='ignored'.*namespace='proc'"):
        get_registry(client, namespace="ignored")
    with pytest.raises(RegistryError, match=r"ttl=5\b.*ttl=60"):
        get_registry(ttl=5)
    with pytest.raises(RegistryError, match=r"url='redis://elsewhere:6380/0'"):
        get_registry(url="redis://elsewhere:6380/0")
    tid = first.get_or_create("a.b")
    assert get_registry().lookup(tid) == "a.b"


@pytest.mark.usefixtures("no_global_registry")
def test_reset_registry_clears_and_drops(client: Any) -> None:
    first = get_registry(client, namespace="proc")
    first.initialize_root("acme")
    first.get_or_create("a.b")
    untouched = ThreadRegistry(client, namespace="bystander")
    kept = untouched.get_or_create("a.b")
    reset_registry()
    assert ThreadRegistry(client, namespace="proc").debug_dump() == {}
    assert untouched.debug_dump() == {kept: "a.b"}
    second = get_registry(client, namespace="proc")
    assert second is not first
    assert second.root_uuid is None
    assert second.root_chain == "system"
    reset_registry()
    reset_registry()  # nothing to reset: no error


@pytest.mark.usefixtures("no_global_registry")
def test_get_registry_without_backend_is_embedded(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry.default, "_warned_embedded", False)
    with caplog.at_level("WARNING", logger="registry"):
        reg = get_registry(namespace="embedded")
        reset_registry()
        reg = get_registry(namespace="embedded")
    warnings = [r for r in caplog.records if "embedded in-process backend" in r.getMessage()]
    assert len(warnings) == 1, "the embedded fallback warns once per process"
    assert "private to this process" in warnings[0].getMessage()
    tid = reg.get_or_create("a.b")
    assert get_registry().lookup(tid) == "a.b"
    reset_registry()
    assert get_registry(namespace="embedded").lookup(tid) is None
