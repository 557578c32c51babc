"""Strict mode and answering in one script: what a bus relies on to never misroute silently.

strict=True: extend_chain and prune_for_response on an id that names no live thread raise
UnknownThreadError, decided inside the same script, writing nothing. drop=True: the
answered thread goes in the same script that routes the answer. Both backends, sync and
async (tests/conftest.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from registry import (
    InvalidConfigError,
    RegistryError,
    Route,
    ThreadRegistry,
    UnknownThreadError,
    get_registry,
)
from registry.errors import from_script_error
from registry.keys import namespace_keys
from registry.scripts import script
from tests.conftest import keyspace
from tests.servers import RedisServer

MakeRegistry = Callable[..., ThreadRegistry]
TTL = "3600000"


@pytest.fixture
def strict(make_registry: MakeRegistry) -> ThreadRegistry:
    return make_registry(namespace="acme", strict=True)


def test_unknown_thread_error_is_a_registry_and_lookup_error() -> None:
    assert issubclass(UnknownThreadError, RegistryError)
    assert issubclass(UnknownThreadError, LookupError)
    mapped = from_script_error("UNKNOWNID thread id 0f0f is unknown or expired; nothing was written")
    assert isinstance(mapped, UnknownThreadError)
    assert mapped.thread_id == "0f0f"


def test_strict_extend_chain_of_unknown_id_raises_and_writes_nothing(
    strict: ThreadRegistry, client: Any
) -> None:
    strict.initialize_root("acme")
    before = keyspace(client)
    unknown = str(uuid.uuid4())
    with pytest.raises(UnknownThreadError, match=unknown) as info:
        strict.extend_chain(unknown, "calculator.add")
    assert info.value.thread_id == unknown
    assert keyspace(client) == before


def test_strict_prune_of_unknown_id_raises_and_writes_nothing(strict: ThreadRegistry, client: Any) -> None:
    strict.initialize_root("acme")
    before = keyspace(client)
    with pytest.raises(UnknownThreadError):
        strict.prune_for_response(str(uuid.uuid4()))
    with pytest.raises(UnknownThreadError):
        strict.prune_for_response(str(uuid.uuid4()), drop=True)
    assert keyspace(client) == before


@pytest.mark.parametrize("bad", ["", "not-a-uuid", "0" * 36, b"\xff\xfe"])
def test_strict_malformed_id_raises_before_sending(strict: ThreadRegistry, client: Any, bad: Any) -> None:
    before = keyspace(client)
    with pytest.raises(UnknownThreadError, match="not a UUID"):
        strict.extend_chain(bad, "x")
    with pytest.raises(UnknownThreadError, match="not a UUID"):
        strict.prune_for_response(bad)
    assert keyspace(client) == before


def test_strict_known_ids_work_as_before(strict: ThreadRegistry) -> None:
    root = strict.initialize_root("acme")
    console = strict.extend_chain(root, "console")
    add = strict.extend_chain(console, "calculator.add")
    assert strict.lookup_hops(add) == ("system", "acme", "console", "calculator.add")
    assert strict.prune_for_response(add) == ("console", console)
    one = strict.get_or_create(["solo"])
    assert strict.prune_for_response(one) == (None, None)  # a one-hop chain: no caller, not unknown
    assert strict.lookup(one) is None


def test_strict_expired_id_raises(make_registry: MakeRegistry, client: Any) -> None:
    reg = make_registry(namespace="acme", ttl=0.2, strict=True)
    tid = reg.get_or_create("a.b")
    time.sleep(0.5)
    assert reg.lookup(tid) is None
    with pytest.raises(UnknownThreadError):
        reg.extend_chain(tid, "c")
    with pytest.raises(UnknownThreadError):
        reg.prune_for_response(tid)


def test_not_strict_keeps_the_compatible_answers(reg: ThreadRegistry) -> None:
    assert reg.strict is False
    unknown = str(uuid.uuid4())
    assert reg.lookup_hops(reg.extend_chain(unknown, "x")) == ("x",)
    assert reg.prune_for_response(str(uuid.uuid4())) == Route(None, None)


def test_strict_in_a_batch_puts_the_error_in_its_place(strict: ThreadRegistry) -> None:
    root = strict.initialize_root("acme")
    b = strict.batch()
    b.extend_chain(root, "console").extend_chain(str(uuid.uuid4()), "x").prune_for_response(str(uuid.uuid4()))
    results = b.execute(raise_on_error=False)
    assert strict.lookup_hops(results[0]) == ("system", "acme", "console")
    assert isinstance(results[1], UnknownThreadError)
    assert isinstance(results[2], UnknownThreadError)
    b = strict.batch()
    b.extend_chain(str(uuid.uuid4()), "x")
    with pytest.raises(UnknownThreadError):
        b.execute()


def test_strict_must_be_a_bool(make_registry: MakeRegistry) -> None:
    with pytest.raises(InvalidConfigError, match="strict 1 must be True or False"):
        make_registry(strict=1)


def test_strict_is_shown(strict: ThreadRegistry) -> None:
    assert strict.strict is True
    assert "strict=True" in repr(getattr(strict, "_target", strict))  # the async view shows its target


# ---------------------------------------------------------------- ids as a bus reads them


def test_bytes_ids_from_a_client_without_decode_responses(make_registry: MakeRegistry) -> None:
    """A bus that reads ids back as bytes gets the same thread, never a root-less chain."""
    for strict_mode in (False, True):
        reg = make_registry(namespace=f"bytes-{strict_mode}", strict=strict_mode)
        root = reg.initialize_root("acme")
        console = reg.extend_chain(root, "console")
        as_read = console.encode()  # what redis.Redis() without decode_responses returns
        add = reg.extend_chain(as_read, "calculator.add")
        assert reg.lookup_hops(add) == ("system", "acme", "console", "calculator.add")
        assert reg.prune_for_response(add.encode()) == ("console", console)
        assert reg.extend_chain(uuid.UUID(console), "calculator.add") == add


# ---------------------------------------------------------------- answer and drop in one script


def test_prune_with_drop_routes_and_removes_the_answered_thread(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    console = reg.extend_chain(root, "console")
    add = reg.extend_chain(console, "calculator.add")
    route = reg.prune_for_response(add, drop=True)
    assert isinstance(route, Route)
    assert route == Route(target="console", thread_id=console)
    target, back = route  # still unpacks as a pair
    assert (target, back) == ("console", console)
    assert reg.lookup(add) is None
    assert reg.lookup(console) == "system.acme.console"
    assert set(reg.debug_dump()) == {root, console}
    # the chain comes back when asked for again (SPEC: a removed chain may get its id back)
    assert reg.lookup_hops(reg.extend_chain(console, "calculator.add")) == (
        "system",
        "acme",
        "console",
        "calculator.add",
    )


def test_prune_with_drop_of_one_hop_and_unknown(reg: ThreadRegistry, client: Any) -> None:
    one = reg.get_or_create(["solo"])
    assert reg.prune_for_response(one, drop=True) == (None, None)
    assert reg.lookup(one) is None
    before = keyspace(client)
    assert reg.prune_for_response(str(uuid.uuid4()), drop=True) == (None, None)
    assert keyspace(client) == before


def test_prune_with_drop_of_a_registered_id(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    external = str(uuid.uuid4())
    tid = reg.register_thread(external, "console", "router")
    assert tid == external
    route = reg.prune_for_response(tid, drop=True)
    assert route.target == "console"
    assert reg.lookup(external) is None
    assert reg.lookup_hops(route.thread_id) == ("system", "acme", "console")
    assert root in reg.debug_dump()


def test_prune_with_drop_in_a_batch(reg: ThreadRegistry) -> None:
    a = reg.get_or_create(["x", "a"])
    b = reg.get_or_create(["x", "b"])
    batch = reg.batch()
    batch.prune_for_response(a, drop=True).prune_for_response(b)
    (ra, rb) = batch.execute()
    assert ra == rb == ("x", reg.get_or_create(["x"]))
    assert reg.lookup(a) is None
    assert reg.lookup(b) == "x.b"


def test_drop_must_be_a_bool(reg: ThreadRegistry) -> None:
    with pytest.raises(InvalidConfigError, match="drop 'yes' must be True or False"):
        reg.prune_for_response(str(uuid.uuid4()), drop="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "argv", "message"),
    [
        (
            "extend_chain",
            ["3600000", str(uuid.uuid4()), "0", str(uuid.uuid4()), "x", "yes"],
            "strict flag yes",
        ),
        (
            "prune_for_response",
            ["3600000", str(uuid.uuid4()), "0", str(uuid.uuid4()), "2", ""],
            "strict flag 2",
        ),
        (
            "prune_for_response",
            ["3600000", str(uuid.uuid4()), "0", str(uuid.uuid4()), "", "x"],
            "drop flag x",
        ),
    ],
)
def test_scripts_check_their_flags_before_writing(
    client: Any, name: str, argv: list[str], message: str
) -> None:
    keys = namespace_keys("acme")
    ThreadRegistry(client, namespace="acme").get_or_create("a.b")
    before = keyspace(client)
    s = script(name)
    with pytest.raises(redis.ResponseError, match=f"^BADARG {message} must be 1 or empty"):
        client.eval(s.source, len(keys), *keys, *argv)
    assert keyspace(client) == before


# ---------------------------------------------------------------- a reset namespace


@pytest.mark.parametrize("strict_mode", [True, False])
def test_restart_of_an_unpersisted_server_is_caught_in_strict_mode(strict_mode: bool) -> None:
    """After a restart without persistence every thread is gone, the root included.

    Strict mode says so on the first call that relies on a lost thread; without it
    the call silently builds a root-less one-hop chain (the seed's behaviour, kept).
    """
    with RedisServer() as server:
        reg = ThreadRegistry.from_url(server.url, namespace="acme", strict=strict_mode)
        root = reg.initialize_root("acme")
        console = reg.extend_chain(root, "console")
        port = server.port
        server.stop()
        server.port = port
        server.start()
        if strict_mode:
            with pytest.raises(UnknownThreadError):
                reg.extend_chain(console, "router")
            with pytest.raises(UnknownThreadError):
                reg.extend_chain(reg.root_uuid or "", "console")  # root_uuid points at nothing
            assert reg.debug_dump() == {}  # nothing was written
            # the remedy: initialize the root again (every process gets the same new one)
            new_root = reg.initialize_root("acme")
            assert reg.lookup(new_root) == "system.acme"
            assert reg.lookup_hops(reg.extend_chain(new_root, "console")) == ("system", "acme", "console")
        else:
            rootless = reg.extend_chain(console, "router")
            assert reg.lookup_hops(rootless) == ("router",)
        reg.close()


@pytest.mark.usefixtures("no_global_registry")
def test_get_registry_takes_strict(client: Any) -> None:
    reg = get_registry(client, namespace="proc", strict=True)
    assert reg.strict is True
    with pytest.raises(UnknownThreadError):
        reg.extend_chain(str(uuid.uuid4()), "x")
    with pytest.raises(RegistryError, match=r"strict=False.*strict=True"):
        get_registry(strict=False)
    assert get_registry(strict=True) is reg


def test_every_error_code_a_script_can_raise_maps_to_an_exception() -> None:
    """A code with no entry would reach the caller as a bare redis ResponseError."""
    import re
    from pathlib import Path

    from registry import errors

    lua = Path(__file__).resolve().parent.parent / "lua"
    codes = {m for f in lua.glob("*.lua") for m in re.findall(r"'([A-Z][A-Z_]{3,}) ", f.read_text())}
    assert "UNKNOWNID" in codes
    assert codes <= set(errors._BY_CODE), f"unmapped: {sorted(codes - set(errors._BY_CODE))}"
    for code in codes:
        assert isinstance(errors.from_script_error(f"{code} x"), errors.RegistryError)
