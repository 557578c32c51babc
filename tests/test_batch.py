"""Batches: same results as single calls, one round trip, NOSCRIPT recovery, bad input at queue time."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import (
    InvalidHopError,
    InvalidThreadIdError,
    RegistryError,
    RootConflictError,
    ThreadIdConflictError,
    ThreadRegistry,
    embedded,
)
from registry.aio import AsyncThreadRegistry
from tests.conftest import keyspace
from tests.invariants import assert_one_chain_one_id
from tests.servers import RedisServer

RUN_ON_CLUSTER = True  # the behaviour suite also runs on Redis Cluster (tests/conftest.py)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

HOPS = ["a", "b", "calculator.add", "router", "x y"]
# Operations as (name, argument kinds): "id" picks one of the ids made before the batch.
OPS: list[tuple[str, tuple[str, ...]]] = [
    ("get_or_create", ("chain",)),
    ("start_chain", ("hop", "hop")),
    ("extend_chain", ("id", "hop")),
    ("prune_for_response", ("id",)),
    ("lookup", ("id",)),
    ("lookup_hops", ("id",)),
    ("register_thread", ("ext", "hop", "hop")),
    ("cleanup", ("id",)),
    ("get_table_for_thread", ("id",)),
    ("get_table_root", ("hop",)),
    ("initialize_table_root", ("hop", "hop")),
    ("debug_dump", ()),
]
EXTERNAL = [str(uuid.UUID(int=i + 1, version=4)) for i in range(4)]

op_strategy = st.sampled_from(OPS).flatmap(
    lambda op: st.tuples(
        st.just(op[0]),
        st.tuples(
            *[
                {
                    "chain": st.lists(st.sampled_from(HOPS), min_size=1, max_size=4).map(tuple),
                    "hop": st.sampled_from(HOPS),
                    "id": st.integers(0, 5),
                    "ext": st.sampled_from(EXTERNAL),
                }[kind]
                for kind in op[1]
            ]
        ),
    )
)


def _seed(reg: Any) -> list[str]:
    """The same starting state in any namespace: a root, a few threads, one-hop chains."""
    root = reg.initialize_root("acme")
    a = reg.extend_chain(root, "console")
    b = reg.extend_chain(a, "calculator.add")
    return [root, a, b, reg.get_or_create("solo"), reg.start_chain("a", "b"), str(uuid.uuid4())]


def _args(kinds: tuple[Any, ...], ids: list[str], op: tuple[str, tuple[Any, ...]]) -> list[Any]:
    name, values = op
    return [ids[v] if kind == "id" else v for kind, v in zip(dict(OPS)[name], values, strict=True)]


class Renaming:
    """Compares results up to a bijection between two namespaces' ids."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.forward: dict[str, str] = {}
        self.backward: dict[str, str] = {}
        for a, b in pairs:
            self.match(a, b)

    def match(self, a: Any, b: Any) -> None:
        if isinstance(a, str) and UUID_RE.match(a) and isinstance(b, str) and UUID_RE.match(b):
            assert self.forward.setdefault(a, b) == b, f"{a} maps to {self.forward[a]} and {b}"
            assert self.backward.setdefault(b, a) == a, f"{b} maps back to {self.backward[b]} and {a}"
        elif isinstance(a, dict) and isinstance(b, dict):
            assert len(a) == len(b), (a, b)
            by_value_b = {v: k for k, v in b.items()}
            for key, value in a.items():
                assert value in by_value_b, f"{value!r} missing in {b}"
                self.match(key, by_value_b[value])
        elif isinstance(a, tuple | list) and isinstance(b, tuple | list):
            assert len(a) == len(b), (a, b)
            for x, y in zip(a, b, strict=True):
                self.match(x, y)
        elif isinstance(a, Exception) or isinstance(b, Exception):
            assert type(a) is type(b), (a, b)
        else:
            assert a == b, (a, b)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op_strategy, min_size=1, max_size=25))
def test_batch_results_equal_single_calls(
    make_registry: Callable[..., ThreadRegistry], ops: list[Any]
) -> None:
    batched = make_registry(ttl=None)
    single = make_registry(ttl=None)
    ids_b, ids_s = _seed(batched), _seed(single)
    batch = batched.batch()
    for name, values in ops:
        getattr(batch, name)(*_args((), ids_b, (name, values)))
    got = batch.execute(raise_on_error=False)
    want: list[Any] = []
    for name, values in ops:
        try:
            want.append(getattr(single, name)(*_args((), ids_s, (name, values))))
        except (RootConflictError, ThreadIdConflictError) as exc:
            want.append(exc)
    renaming = Renaming(list(zip(ids_b, ids_s, strict=True)))
    renaming.match(got, want)
    renaming.match(batched.debug_dump(), single.debug_dump())
    batched.clear()
    single.clear()


def test_context_manager_executes_on_exit(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    with reg.batch() as b:
        b.extend_chain(root, "console").lookup(root).get_or_create("system.acme.console")
    assert b.results is not None
    console, chain, again = b.results
    assert chain == "system.acme"
    assert console == again == reg.get_or_create(["system", "acme", "console"])


def test_context_manager_sends_nothing_when_the_block_raises(reg: ThreadRegistry, client: Any) -> None:
    before = keyspace(client)
    with pytest.raises(KeyError), reg.batch() as b:
        b.get_or_create("a.b")
        raise KeyError("stop")
    assert keyspace(client) == before


def test_bad_input_raises_at_queue_time_and_sends_nothing(reg: ThreadRegistry, client: Any) -> None:
    reg.initialize_root("acme")
    before = keyspace(client)
    b = reg.batch()
    b.get_or_create("fine.chain")
    with pytest.raises(InvalidHopError, match="control character"):
        b.extend_chain(str(uuid.uuid4()), "bad\nhop")
    with pytest.raises(InvalidThreadIdError, match="not-a-uuid"):
        b.register_thread("not-a-uuid", "console", "router")
    with pytest.raises(InvalidHopError):
        b.get_or_create("a..b")
    assert len(b) == 1  # only the good call is queued, and nothing was sent
    assert keyspace(client) == before


def test_script_flush_before_execute_is_recovered(reg: ThreadRegistry, client: Any) -> None:
    root = reg.initialize_root("acme")
    b = reg.batch()
    for i in range(50):
        b.extend_chain(root, f"w{i}")
    b.lookup(root).debug_dump().gc()
    client.script_flush()
    results = b.execute()
    assert results[50] == "system.acme"
    assert len(results[51]) == 51
    for i in range(50):
        assert reg.lookup(results[i]) == f"system.acme.w{i}"


def test_errors_keep_their_place_or_raise_the_first(reg: ThreadRegistry) -> None:
    reg.initialize_root("acme")
    results = (
        reg.batch()
        .get_or_create("a")
        .initialize_root("other")
        .get_or_create("b")
        .execute(raise_on_error=False)
    )
    assert isinstance(results[1], RootConflictError)
    assert reg.lookup(results[0]) == "a" and reg.lookup(results[2]) == "b"
    with pytest.raises(RootConflictError):
        reg.batch().initialize_root("other").execute()


def test_empty_batch(reg: ThreadRegistry) -> None:
    assert reg.batch().execute() == []


# ---------------------------------------------------------------- round trips


class CountingConnection(redis.Connection):
    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        super().send_packed_command(command, check_health)


class CountingAsyncConnection(redis.asyncio.Connection):
    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        await super().send_packed_command(command, check_health)


def _evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def test_batch_of_100_is_one_round_trip(redis_server: RedisServer) -> None:
    pool = redis.ConnectionPool(connection_class=CountingConnection, host="127.0.0.1", port=redis_server.port)
    reg = ThreadRegistry(redis.Redis(connection_pool=pool), namespace="rt")
    root = reg.initialize_root("acme")
    reg.extend_chain(root, "warm-up")  # the script is loaded: the steady state is measured
    admin = redis_server.client()
    b = reg.batch()
    for i in range(100):
        b.extend_chain(root, f"w{i}")
    before_sends, before_calls = CountingConnection.sends, _evalsha_calls(admin)
    results = b.execute()
    assert CountingConnection.sends - before_sends == 1
    assert _evalsha_calls(admin) - before_calls == 100
    assert len(set(results)) == 100
    reg.clear()


def test_async_batch_of_100_is_one_round_trip(redis_server: RedisServer) -> None:
    async def main() -> None:
        pool = redis.asyncio.ConnectionPool(
            connection_class=CountingAsyncConnection, host="127.0.0.1", port=redis_server.port
        )
        async with AsyncThreadRegistry(redis.asyncio.Redis(connection_pool=pool), namespace="rt-a") as reg:
            root = await reg.initialize_root("acme")
            await reg.extend_chain(root, "warm-up")  # the script is loaded
            b = reg.batch()
            for i in range(100):
                b.extend_chain(root, f"w{i}")
            before_sends, before_calls = CountingAsyncConnection.sends, _evalsha_calls(admin)
            results = await b.execute()
            assert CountingAsyncConnection.sends - before_sends == 1
            assert _evalsha_calls(admin) - before_calls == 100
            assert len(set(results)) == 100
            await reg.clear()

    admin = redis_server.client()
    asyncio.run(main())


# ---------------------------------------------------------------- cancellation


@pytest.mark.parametrize("backend_kind", ["redis", "fake", "fake-plain"])
def test_cancelled_calls_leave_no_half_state(backend_kind: str, redis_server: RedisServer) -> None:
    """Cancel many awaiting operations at random moments: each script ran whole or not at all."""

    async def main(aclient: Any, check: ThreadRegistry) -> None:
        reg = AsyncThreadRegistry(aclient, namespace="cancel", ttl=None)
        root = await reg.initialize_root("acme")
        routers = [await reg.extend_chain(root, f"r{i}") for i in range(4)]

        async def work(n: int) -> None:
            tid = await reg.extend_chain(routers[n % 4], f"w{n % 7}")
            await reg.extend_chain(tid, f"deep{n % 3}")
            await reg.prune_for_response(tid)
            await reg.register_thread(str(uuid.UUID(int=n % 11 + 1, version=4)), f"c{n % 5}", "router")

        for round_ in range(30):
            tasks = [asyncio.ensure_future(work(round_ * 50 + n)) for n in range(50)]
            await asyncio.sleep(0.0005 * (round_ % 7))
            for t in tasks[::2]:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # Every mapping the server holds is whole: both directions agree.
        dump = assert_one_chain_one_id(check)
        assert len(dump) > 5
        await reg.aclose()

    if backend_kind == "redis":
        redis_server.client().flushall()
        aclient: Any = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
        check = ThreadRegistry(redis_server.client(), namespace="cancel", ttl=None)
    else:
        server = embedded.new_server() if backend_kind == "fake" else fakeredis.FakeServer()
        aclient = embedded.async_client_for(server)
        check = ThreadRegistry(embedded.client_for(server), namespace="cancel", ttl=None)
    asyncio.run(main(aclient, check))


def test_a_batch_runs_once(reg: ThreadRegistry, client: Any) -> None:
    """An executed batch executed again used to return [] silently."""
    b = reg.batch()
    b.get_or_create("a.b")
    (tid,) = b.execute()
    assert b.results == [tid]
    before = keyspace(client)
    with pytest.raises(RegistryError, match="executed already"):
        b.execute()
    with pytest.raises(RegistryError, match="executed already"):
        b.lookup(tid)
    assert keyspace(client) == before
    assert b.results == [tid]


def test_ping_asks_the_server(reg: ThreadRegistry) -> None:
    assert reg.ping() is True


def test_ping_of_a_server_that_is_gone_raises() -> None:
    with RedisServer() as server:
        url = server.url
    reg = ThreadRegistry.from_url(url, namespace="gone", socket_connect_timeout=0.2)
    with pytest.raises(redis.ConnectionError):
        reg.ping()
    reg.close()
