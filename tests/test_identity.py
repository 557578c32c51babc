"""The identity model: one chain, one id; a thread per request when requests must not share.

Concurrent requests along one path share that path's threads, so answering one of them
and removing its threads cuts the others off (shown in-process, deterministically). A
first hop of its own per request (request_hop) gives each request private threads:
proven with several processes racing on one real server.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from registry import InvalidHopError, ThreadRegistry, UnknownThreadError, listener_of, request_hop
from registry.keys import namespace_keys
from tests import request_workers
from tests.servers import RedisServer
from tests.test_races import run_processes

MakeRegistry = Callable[..., ThreadRegistry]


def test_requests_on_one_path_share_its_threads(make_registry: MakeRegistry) -> None:
    """Why a per-request hop: two requests on the same path get the same ids, and the
    first answer that drops its thread leaves the second with nowhere to answer."""
    reg = make_registry(namespace="acme", strict=True)
    root = reg.initialize_root("acme")
    first = reg.extend_chain(reg.extend_chain(root, "console"), "calculator.add")
    second = reg.extend_chain(reg.extend_chain(root, "console"), "calculator.add")
    assert first == second  # one chain, one id: the requests share the thread
    reg.prune_for_response(first, drop=True)  # the first answer
    with pytest.raises(UnknownThreadError):
        reg.prune_for_response(second, drop=True)  # the second answer has lost its way


def test_request_hops_give_each_request_its_own_threads(make_registry: MakeRegistry) -> None:
    reg = make_registry(namespace="acme", strict=True)
    root = reg.initialize_root("acme")
    one = reg.extend_chain(reg.extend_chain(root, request_hop("console", "1")), "calculator.add")
    two = reg.extend_chain(reg.extend_chain(root, request_hop("console", "2")), "calculator.add")
    assert one != two
    route = reg.prune_for_response(one, drop=True)
    assert route.target == "console#1"
    assert listener_of(route.target) == "console"
    assert reg.prune_for_response(two, drop=True).target == "console#2"


def test_request_hop_rules() -> None:
    assert request_hop("console", "17") == "console#17"
    tagged = request_hop("calculator.add")
    assert listener_of(tagged) == "calculator.add"
    assert len(tagged.partition("#")[2]) == 24
    assert request_hop("console") != request_hop("console")
    assert listener_of("router") == "router"
    with pytest.raises(InvalidHopError, match="listener 'a#b' contains '#'"):
        request_hop("a#b")
    with pytest.raises(InvalidHopError, match="request tag"):
        request_hop("console", "bad\ntag")
    with pytest.raises(InvalidHopError, match="request hop"):
        request_hop("c" * 200, "t" * 100)  # over 256 bytes together


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as s:
        yield s


def test_processes_with_requests_on_one_path_never_misroute(server: RedisServer) -> None:
    namespace = f"req-{uuid.uuid4().hex[:6]}"
    plans = [{"url": server.url, "namespace": namespace, "requests": 60} for _ in range(4)]
    answers = run_processes(request_workers.play_requests, plans)
    wrong = [line for answer in answers for line in answer]
    assert wrong == []
    reg = ThreadRegistry.from_url(server.url, namespace=namespace)
    # every request cleaned up after itself: only the root is left
    assert list(reg.debug_dump().values()) == ["system.acme"]
    reg.close()


def _derived(salt: bytes, hops: tuple[str, ...]) -> str:
    """A chain's derived id, computed here independently of the scripts: SHA-1 of the
    namespace's salt, a zero byte and the hops joined by \\x1f, its first 32 hex digits
    as a UUIDv8 (the 13th and 17th replaced by the version and variant digit 8)."""
    h = hashlib.sha1(salt + b"\0" + "\x1f".join(hops).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-8{h[17:20]}-{h[20:32]}"


@pytest.mark.parametrize("backend", ["redis", "fake"], indirect=True)
def test_derived_ids_follow_the_stored_formula(client: Any) -> None:
    """A namespace written by an earlier version is read by deriving its chains' ids
    again: a script that derived them differently would give a chain a second id. So
    the formula is pinned here, on every path that derives one (a new chain by
    get_or_create, extend_chain and prune_for_response, a touch of an existing one),
    on the servers that have sha1hex (plain fakeredis derives with a stand-in)."""
    reg = ThreadRegistry(client, namespace="pinned", ttl=3600)
    first = reg.get_or_create(("console", "router"))
    salt = client.hget(namespace_keys("pinned")[0], "salt")
    assert isinstance(salt, bytes) and salt
    assert first == _derived(salt, ("console", "router"))
    child = reg.extend_chain(first, "greeter")
    assert child == _derived(salt, ("console", "router", "greeter"))
    assert reg.extend_chain(first, "greeter") == child  # the hot path's touch
    deep = reg.get_or_create(("console", "router", "greeter", "worker", "tool"))
    assert deep == _derived(salt, ("console", "router", "greeter", "worker", "tool"))
    # pruning a fresh chain whose parent has no mapping yet binds the parent's derived id
    lone = reg.get_or_create(("edge", "relay", "sink"))
    assert reg.prune_for_response(lone) == ("relay", _derived(salt, ("edge", "relay")))
