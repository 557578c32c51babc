"""Hops keep their boundaries (SPEC 4.2): only get_or_create(str) splits on dots."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from registry import ThreadRegistry
from tests.invariants import assert_one_chain_one_id

RUN_ON_CLUSTER = True  # the behaviour suite also runs on Redis Cluster (tests/conftest.py)

MakeRegistry = Callable[..., ThreadRegistry]


def test_prune_returns_dotted_hop_whole(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    console = reg.extend_chain(root, "console")
    add = reg.extend_chain(console, "calculator.add")
    assert reg.lookup_hops(add) == ("system", "acme", "console", "calculator.add")
    assert reg.lookup(add) == "system.acme.console.calculator.add"
    assert reg.prune_for_response(add) == ("console", console)

    answer = reg.extend_chain(add, "math.helper")
    assert reg.prune_for_response(answer) == ("calculator.add", add)


def test_dotted_hop_differs_from_its_split_form(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    console = reg.extend_chain(root, "console")
    add = reg.extend_chain(console, "calculator.add")
    split = reg.get_or_create("system.acme.console.calculator.add")  # five hops
    assert split != add
    assert reg.lookup_hops(split) == ("system", "acme", "console", "calculator", "add")
    assert reg.prune_for_response(split)[0] == "calculator"
    assert reg.get_or_create(["system", "acme", "console", "calculator.add"]) == add


def test_extend_chain_of_unknown_id_keeps_dotted_hop(reg: ThreadRegistry) -> None:
    tid = reg.extend_chain(str(uuid.uuid4()), "calculator.add")
    assert reg.lookup_hops(tid) == ("calculator.add",)
    assert reg.prune_for_response(tid) == (None, None)
    assert reg.lookup(tid) is None


def test_start_chain_keeps_dotted_hops(reg: ThreadRegistry) -> None:
    tid = reg.start_chain("svc.a", "svc.b")
    assert reg.lookup_hops(tid) == ("svc.a", "svc.b")
    assert reg.lookup(tid) == "svc.a.svc.b"
    assert tid != reg.start_chain("svc", "a.svc.b")
    assert tid != reg.start_chain("svc.a.svc", "b")
    assert tid != reg.get_or_create("svc.a.svc.b")
    assert reg.get_or_create(["svc.a", "svc.b"]) == tid
    target, caller = reg.prune_for_response(tid)
    assert target == "svc.a"
    assert caller is not None and reg.lookup_hops(caller) == ("svc.a",)


def test_register_thread_keeps_dotted_hops(reg: ThreadRegistry) -> None:
    reg.initialize_root("org.v2")
    tid = str(uuid.uuid4())
    assert reg.register_thread(tid, "ext.gateway", "router.main") == tid
    assert reg.lookup_hops(tid) == ("system", "org.v2", "ext.gateway", "router.main")
    assert reg.lookup(tid) == "system.org.v2.ext.gateway.router.main"
    target, caller = reg.prune_for_response(tid)
    assert target == "ext.gateway"
    assert caller is not None and reg.lookup_hops(caller) == ("system", "org.v2", "ext.gateway")


def test_register_thread_without_root_keeps_dotted_hops(reg: ThreadRegistry) -> None:
    tid = str(uuid.uuid4())
    assert reg.register_thread(tid, "a.b", "c") == tid
    assert reg.lookup_hops(tid) == ("a.b", "c")
    other = str(uuid.uuid4())
    assert reg.register_thread(other, "a", "b.c") == other  # a different chain, not a clash
    assert reg.lookup_hops(other) == ("a", "b.c")


def test_root_with_dotted_organism(reg: ThreadRegistry, make_registry: MakeRegistry) -> None:
    root = reg.initialize_root("system.boot")
    assert reg.lookup_hops(root) == ("system", "system.boot")
    assert reg.root_chain == "system.system.boot"
    assert make_registry(namespace="acme").initialize_root("system.boot") == root
    assert reg.get_or_create("system.system.boot") != root
    child = reg.extend_chain(root, "x")
    assert reg.prune_for_response(child) == ("system.boot", root)


def test_table_root_with_dotted_names(reg: ThreadRegistry) -> None:
    table = reg.initialize_table_root("db.orders", "org.v1")
    assert reg.lookup_hops(table) == ("db.orders", "org.v1")
    assert reg.get_table_root("db.orders") == table
    assert reg.get_table_root("db") is None
    worker = reg.extend_chain(table, "worker.pool")
    assert reg.lookup_hops(worker) == ("db.orders", "org.v1", "worker.pool")
    assert reg.get_table_for_thread(worker) == "db.orders"
    assert reg.prune_for_response(worker) == ("org.v1", table)
    assert reg.get_table_for_thread(reg.get_or_create("db.orders.org.v1")) is None


def test_dump_and_threads_render_dotted_hops(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("org.v2")
    add = reg.extend_chain(root, "calculator.add")
    assert reg.debug_dump() == {root: "system.org.v2", add: "system.org.v2.calculator.add"}
    rows = {row.thread_id: row.hops for row in reg.threads()}
    assert rows == {root: ("system", "org.v2"), add: ("system", "org.v2", "calculator.add")}
    assert_one_chain_one_id(reg)


def test_hops_made_of_dots(reg: ThreadRegistry) -> None:
    ids = {
        reg.get_or_create(["."]): (".",),
        reg.get_or_create([".", "."]): (".", "."),
        reg.get_or_create([".."]): ("..",),
        reg.get_or_create(["a.", ".b"]): ("a.", ".b"),
        reg.get_or_create(["a", "b"]): ("a", "b"),
    }
    assert len(ids) == 5
    for tid, hops in ids.items():
        assert reg.lookup_hops(tid) == hops
    assert_one_chain_one_id(reg)
