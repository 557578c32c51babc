"""Namespaces are walls (SPEC 4.6), whatever the hop names contain."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from registry import ThreadRegistry
from tests.conftest import keyspace
from tests.invariants import assert_one_chain_one_id

RUN_ON_CLUSTER = True  # the behaviour suite also runs on Redis Cluster (tests/conftest.py)

MakeRegistry = Callable[..., ThreadRegistry]

HOSTILE_HOPS = [
    "*",
    "?",
    "[a-z]",
    "{x}",
    "{",
    "}",
    "a:b",
    "threadreg:{beta}:threads",
    "with spaces",
    " ",
    "日本語",
    "🙂",
    "\\",
    "'\"",
    "%s%d",
    "é" * 128,  # 256 bytes
    "x" * 256,
]


def tag_of(key: bytes) -> bytes:
    """The Redis Cluster hash tag of a key: what lies between the first '{' and the next '}'."""
    start = key.index(b"{")
    end = key.index(b"}", start + 1)
    return key[start + 1 : end]


def keys_of(client: Any, namespace: str) -> dict[bytes, Any]:
    return {k: v for k, v in keyspace(client).items() if tag_of(k) == namespace.encode()}


def populate(reg: ThreadRegistry, hops: list[str]) -> dict[str, str]:
    """A bit of everything in one namespace; returns its debug_dump."""
    root = reg.initialize_root("acme")
    table = reg.initialize_table_root("orders", "acme")
    for hop in hops:
        tid = reg.extend_chain(root, hop)
        reg.extend_chain(tid, hop)
        reg.extend_chain(table, hop)
        reg.start_chain(hop, hop)
        reg.get_or_create([hop, "tail"])
        reg.register_thread(str(uuid.uuid4()), hop, "in")
    return reg.debug_dump()


def test_same_chains_independent_ids(make_registry: MakeRegistry) -> None:
    alpha = make_registry(namespace="alpha")
    beta = make_registry(namespace="beta")
    a_root, b_root = alpha.initialize_root("acme"), beta.initialize_root("acme")
    assert a_root != b_root
    a, b = alpha.get_or_create("x.y"), beta.get_or_create("x.y")
    assert a != b
    assert alpha.lookup(b) is None and beta.lookup(a) is None
    assert alpha.extend_chain(a_root, "c") != beta.extend_chain(b_root, "c")
    assert alpha.initialize_table_root("t", "o") != beta.initialize_table_root("t", "o")
    assert beta.get_table_for_thread(alpha.get_table_root("t") or "") is None


def test_same_external_id_bound_in_two_namespaces(make_registry: MakeRegistry) -> None:
    alpha = make_registry(namespace="alpha")
    beta = make_registry(namespace="beta")
    beta.initialize_root("acme")
    tid = str(uuid.uuid4())
    assert alpha.register_thread(tid, "console", "router") == tid
    assert beta.register_thread(tid, "mail", "box") == tid
    assert alpha.lookup(tid) == "console.router"
    assert beta.lookup(tid) == "system.acme.mail.box"


def test_roots_of_different_organisms_in_two_namespaces(make_registry: MakeRegistry) -> None:
    alpha = make_registry(namespace="alpha")
    beta = make_registry(namespace="beta")
    alpha.initialize_root("acme")
    beta.initialize_root("globex")  # no conflict across namespaces
    assert alpha.root_chain == "system.acme"
    assert beta.root_chain == "system.globex"


def test_hostile_hops_round_trip_in_both(make_registry: MakeRegistry) -> None:
    for i, hop in enumerate(HOSTILE_HOPS):
        alpha = make_registry(namespace=f"alpha{i}")
        beta = make_registry(namespace=f"beta{i}")
        for reg in (alpha, beta):
            root = reg.initialize_root(hop)
            tid = reg.extend_chain(root, hop)
            assert reg.lookup_hops(tid) == ("system", hop, hop), hop
            assert reg.prune_for_response(tid) == (hop, root), hop
            table = reg.initialize_table_root(hop, hop)
            assert reg.get_table_root(hop) == table, hop
            assert reg.get_table_for_thread(reg.extend_chain(table, hop)) == hop
        assert alpha.get_or_create([hop, hop, hop]) != beta.get_or_create([hop, hop, hop])
        assert set(alpha.debug_dump()).isdisjoint(beta.debug_dump())


def test_hostile_hops_do_not_cross_namespaces(make_registry: MakeRegistry, client: Any) -> None:
    alpha = make_registry(namespace="alpha")
    beta = make_registry(namespace="beta")
    a_dump = populate(alpha, HOSTILE_HOPS)
    b_dump = populate(beta, HOSTILE_HOPS)
    assert len(a_dump) == len(b_dump) > 5 * len(HOSTILE_HOPS)
    assert set(a_dump).isdisjoint(b_dump)
    assert sorted(a_dump.values()) == sorted(b_dump.values())
    assert_one_chain_one_id(alpha)
    assert_one_chain_one_id(beta)


def test_clear_leaves_other_namespace_whole(make_registry: MakeRegistry, client: Any) -> None:
    alpha = make_registry(namespace="alpha")
    beta = make_registry(namespace="beta")
    populate(alpha, HOSTILE_HOPS)
    b_dump = populate(beta, HOSTILE_HOPS)
    b_keys = keys_of(client, "beta")
    assert b_keys
    alpha.clear()
    assert alpha.debug_dump() == {}
    assert keys_of(client, "alpha") == {}
    assert beta.debug_dump() == b_dump
    assert keys_of(client, "beta") == b_keys
    assert_one_chain_one_id(beta)


def test_namespace_whose_name_prefixes_another(make_registry: MakeRegistry, client: Any) -> None:
    short = make_registry(namespace="a")
    longer = make_registry(namespace="a:b")
    dotted = make_registry(namespace="a.b")
    dumps = {reg.namespace: populate(reg, ["x", "*"]) for reg in (short, longer, dotted)}
    short.clear()
    assert short.debug_dump() == {}
    assert longer.debug_dump() == dumps["a:b"]
    assert dotted.debug_dump() == dumps["a.b"]
    longer.clear()
    assert dotted.debug_dump() == dumps["a.b"]


def test_ids_of_one_namespace_act_as_unknown_in_another(make_registry: MakeRegistry, client: Any) -> None:
    alpha = make_registry(namespace="alpha")
    beta = make_registry(namespace="beta")
    b_root = beta.initialize_root("acme")
    b_thread = beta.extend_chain(b_root, "console")
    b_dump = beta.debug_dump()
    b_keys = keys_of(client, "beta")
    alpha.cleanup(b_thread)
    alpha.cleanup(b_root)
    assert alpha.prune_for_response(b_thread) == (None, None)
    assert alpha.lookup(b_thread) is None
    assert alpha.get_table_for_thread(b_thread) is None
    assert alpha.lookup(alpha.extend_chain(b_thread, "next")) == "next"
    assert alpha.register_thread(b_thread, "x", "y") == b_thread  # free in alpha
    alpha.gc()
    assert beta.debug_dump() == b_dump
    assert keys_of(client, "beta") == b_keys


@pytest.mark.parametrize("namespace", ["acme", "a:b", "tenant.42", "x" * 64, "-_.:"])
def test_every_key_carries_the_namespace_hash_tag(
    make_registry: MakeRegistry, client: Any, namespace: str
) -> None:
    reg = make_registry(namespace=namespace, ttl=3600)
    forever = make_registry(namespace=namespace, ttl=None)
    populate(reg, ["*", "{x}", "a:b"])
    forever.get_or_create("never.expires")
    forever.register_thread(str(uuid.uuid4()), "perm", "bound")
    for _ in range(20):  # enough writes for the periodic sweep to run
        reg.get_or_create("busy.chain")
    reg.gc()
    keys = list(keyspace(client))
    assert len(keys) >= 2
    for key in keys:
        assert tag_of(key) == namespace.encode(), key
        assert key.startswith(b"threadreg:{" + namespace.encode() + b"}:"), key
