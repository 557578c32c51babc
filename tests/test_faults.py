"""The contract under faults: a script cache flushed between batches, replies lost on the
wire (a real TCP proxy that cuts the connection after the server ran the request), bad
input in a queued batch call, and HSCAN over a hash an operator made a large listpack.

Each test is written from a recipe that broke the contract before it was fixed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from registry import (
    NOT_RUN,
    UNKNOWN,
    InvalidConfigError,
    OutcomeUnknownError,
    ThreadRegistry,
)
from registry.aio import AsyncThreadRegistry
from registry.keys import namespace_keys
from registry.operations import GC_PASS_STEP
from registry.scripts import script
from tests.conftest import keyspace
from tests.invariants import assert_one_chain_one_id, raw_mappings
from tests.proxy import TcpProxy
from tests.servers import RedisServer

MakeRegistry = Callable[..., ThreadRegistry]


def new_id() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- batches after SCRIPT FLUSH


def test_batch_after_flush_keeps_order_lookup_then_cleanup(make_registry: MakeRegistry, client: Any) -> None:
    """Scripts this client had loaded used to fail NOSCRIPT after a flush while new ones
    (loaded at the pipeline's head) ran, and the failed ones were re-sent after them."""
    reg = make_registry()
    t = reg.get_or_create("a.b")
    assert reg.batch().lookup(t).execute() == ["a.b"]
    client.script_flush()
    assert reg.batch().lookup(t).cleanup(t).execute() == ["a.b", None]
    assert reg.lookup(t) is None


def test_batch_after_flush_keeps_order_cleanup_then_create(make_registry: MakeRegistry, client: Any) -> None:
    reg = make_registry()
    t = reg.get_or_create("a.b")
    assert reg.batch().cleanup(t).execute() == [None]
    t = reg.get_or_create("a.b")
    client.script_flush()
    _, again = reg.batch().cleanup(t).get_or_create("a.b").execute()
    assert reg.lookup(again) == "a.b"
    assert_one_chain_one_id(reg)


def test_batches_through_repeated_flushes_equal_single_calls(
    make_registry: MakeRegistry, client: Any
) -> None:
    reg = make_registry()
    root = reg.initialize_root("acme")
    for round_ in range(6):
        client.script_flush()
        b = reg.batch()
        b.extend_chain(root, f"w{round_}").lookup(root).cleanup(root)
        b.initialize_root("acme").get_or_create(("system", "acme", f"w{round_}"))
        made, chain, _, root, again = b.execute()
        assert chain == "system.acme"
        assert again == made
        assert reg.lookup(made) == f"system.acme.w{round_}"


# ---------------------------------------------------------------- bad input in a queued call


def test_batch_gc_limit_is_checked_when_queued(make_registry: MakeRegistry, client: Any) -> None:
    reg = make_registry()
    b = reg.batch()
    b.get_or_create("a.b")
    before = keyspace(client)
    for bad in (0, -1, 1.5, "10", True, None):
        with pytest.raises(InvalidConfigError, match="gc limit"):
            b.gc(limit=bad)  # type: ignore[arg-type]
    assert len(b) == 1
    assert keyspace(client) == before, "queueing sent something"
    with pytest.raises(InvalidConfigError, match="gc limit"):
        reg.gc(limit=0)


# ---------------------------------------------------------------- lost replies


@pytest.fixture(scope="module")
def lossy() -> Iterator[tuple[RedisServer, TcpProxy]]:
    """A real server behind a proxy that can cut a connection after the server ran a request."""
    with RedisServer() as server, TcpProxy("127.0.0.1", server.port or 0) as proxy:
        yield server, proxy


def _no_retry_client(proxy: TcpProxy) -> redis.Redis:
    # redis-py's own retries would hide the lost reply from the registry (and re-send).
    return redis.Redis(host="127.0.0.1", port=proxy.port, retry=Retry(NoBackoff(), 0))


def _state(server: RedisServer, namespace: str) -> dict[str, str]:
    return ThreadRegistry(server.client(), namespace=namespace).debug_dump()


@pytest.fixture
def direct(lossy: tuple[RedisServer, TcpProxy]) -> Iterator[redis.Redis]:
    server, _ = lossy
    c = server.client()
    c.flushall()
    yield c
    c.close()


def test_lost_reply_to_a_batch_with_a_removal_is_not_resent(
    lossy: tuple[RedisServer, TcpProxy], direct: redis.Redis
) -> None:
    """redis-py's pipeline retry used to send the whole batch again: lookup then saw the
    cleanup, extend_chain made a stray one-hop chain `x`."""
    server, proxy = lossy
    reg = ThreadRegistry(_no_retry_client(proxy), namespace="lost", ttl=600)
    t = reg.get_or_create("a.b")
    reg.lookup(t)  # the pool holds a connection that did its handshake
    b = reg.batch().lookup(t).extend_chain(t, "x").cleanup(t)
    proxy.cut_after_request()
    with pytest.raises(OutcomeUnknownError) as info:
        b.execute()
    err = info.value
    assert isinstance(err, redis.ConnectionError)  # what code for lost connections catches
    assert err.unknown == (0, 1, 2)
    assert err.results == [UNKNOWN, UNKNOWN, UNKNOWN]
    assert "cleanup" in str(err)
    # the server ran the batch exactly once
    dump = _state(server, "lost")
    assert sorted(dump.values()) == ["a.b.x"], dump
    assert "x" not in dump.values()


def test_lost_reply_to_a_single_cleanup_is_not_resent(
    lossy: tuple[RedisServer, TcpProxy], direct: redis.Redis
) -> None:
    server, proxy = lossy
    reg = ThreadRegistry(_no_retry_client(proxy), namespace="lost", ttl=600)
    t = reg.get_or_create("a.b")
    reg.lookup(t)
    proxy.cut_after_request()
    with pytest.raises(OutcomeUnknownError) as info:
        reg.cleanup(t)
    assert info.value.unknown == (0,)
    assert _state(server, "lost") == {}
    # what the error says to do: look it up (a read, safe), then act
    assert reg.lookup(t) is None


def test_lost_reply_to_a_one_hop_prune_is_not_resent(
    lossy: tuple[RedisServer, TcpProxy], direct: redis.Redis
) -> None:
    server, proxy = lossy
    reg = ThreadRegistry(_no_retry_client(proxy), namespace="lost", ttl=600)
    t = reg.get_or_create("solo")
    reg.lookup(t)
    proxy.cut_after_request()
    with pytest.raises(OutcomeUnknownError):
        reg.prune_for_response(t)
    assert _state(server, "lost") == {}


def test_lost_reply_to_a_prune_on_the_pool_is_not_resent(
    lossy: tuple[RedisServer, TcpProxy], direct: redis.Redis
) -> None:
    """Once the plan has seen the server take prune_for_response, a single prune goes on a
    pooled connection without the plan (SyncTransport._removal_on_pool); a lost reply
    still ends in OutcomeUnknownError, the removal made once and not re-sent."""
    server, proxy = lossy
    reg = ThreadRegistry(_no_retry_client(proxy), namespace="lost", ttl=600)
    warm, t = reg.get_or_create("warm"), reg.get_or_create("solo")
    assert reg.prune_for_response(warm) == (None, None)  # through the plan, which loads the script
    assert script("prune_for_response").sha in reg._transport.loaded
    proxy.cut_after_request()
    with pytest.raises(OutcomeUnknownError) as info:
        reg.prune_for_response(t)
    assert info.value.unknown == (0,)
    assert _state(server, "lost") == {}
    assert len(reg._transport.client.connection_pool._in_use_connections) == 0


def test_lost_reply_to_a_batch_of_creations_is_resent_where_retrying(
    lossy: tuple[RedisServer, TcpProxy], direct: redis.Redis
) -> None:
    """Without removals a re-send changes nothing: each operation finds what the first
    attempt made. With retry_seconds the batch completes; without, it says so."""
    server, proxy = lossy
    reg = ThreadRegistry(_no_retry_client(proxy), namespace="lost", ttl=600, retry_seconds=5)
    root = reg.initialize_root("acme")
    b = reg.batch().extend_chain(root, "a").get_or_create("system.acme.a.b").lookup(root)
    proxy.cut_after_request()
    a, ab, chain = b.execute()
    assert proxy.cuts >= 1
    assert (reg.lookup(a), reg.lookup(ab), chain) == ("system.acme.a", "system.acme.a.b", "system.acme")
    assert len(_state(server, "lost")) == 3

    once = ThreadRegistry(_no_retry_client(proxy), namespace="lost", ttl=600, retry_seconds=0)
    once.lookup(root)
    proxy.cut_after_request()
    with pytest.raises(OutcomeUnknownError) as info:
        once.batch().extend_chain(root, "c").lookup(root).execute()
    assert info.value.unknown == (0, 1)
    assert "re-sending" in str(info.value)


def test_lost_reply_to_a_single_creation_is_retried_by_redis_py(
    lossy: tuple[RedisServer, TcpProxy], direct: redis.Redis
) -> None:
    """The fast path leaves retries of idempotent creations to redis-py: same answer."""
    server, proxy = lossy
    client = redis.Redis(host="127.0.0.1", port=proxy.port)  # redis-py's default retries
    reg = ThreadRegistry(client, namespace="lost", ttl=600)
    reg.lookup(new_id())
    proxy.cut_after_request()
    tid = reg.get_or_create("a.b")
    assert reg.lookup(tid) == "a.b"
    assert _state(server, "lost") == {tid: "a.b"}


def test_lost_reply_to_an_async_batch_with_a_removal(
    lossy: tuple[RedisServer, TcpProxy], direct: redis.Redis
) -> None:
    server, proxy = lossy

    async def scenario() -> OutcomeUnknownError:
        client = redis.asyncio.Redis(host="127.0.0.1", port=proxy.port, retry=AsyncRetry(NoBackoff(), 0))
        async with AsyncThreadRegistry(client, namespace="lost", ttl=600) as reg:
            t = await reg.get_or_create("a.b")
            await reg.lookup(t)
            b = reg.batch().lookup(t).extend_chain(t, "x").cleanup(t)
            proxy.cut_after_request()
            try:
                await b.execute()
            except OutcomeUnknownError as exc:
                return exc
            raise AssertionError("the lost batch was not reported")

    err = asyncio.run(scenario())
    assert err.unknown == (0, 1, 2)
    assert sorted(_state(server, "lost").values()) == ["a.b.x"]


def test_an_async_batch_that_stalls_times_out_after_the_socket_timeout(
    lossy: tuple[RedisServer, TcpProxy], direct: redis.Redis
) -> None:
    """An async batch's replies are read under one deadline (not one timeout per
    reply): a server that stops answering still fails the batch no sooner than
    socket_timeout and no later than 1.5 times it, as a lost reply; and a batch that
    completes leaves the connection's socket_timeout as it was."""
    _, proxy = lossy
    timeout = 0.4

    async def scenario() -> tuple[OutcomeUnknownError, float, list[float | None]]:
        client = redis.asyncio.Redis(
            host="127.0.0.1", port=proxy.port, socket_timeout=timeout, retry=AsyncRetry(NoBackoff(), 0)
        )
        async with AsyncThreadRegistry(client, namespace="stall", ttl=600) as reg:
            t = await reg.get_or_create("a.b")
            assert await reg.batch().lookup(t).lookup(t).lookup(t).execute() == ["a.b"] * 3
            kept = [c.socket_timeout for c in client.connection_pool._available_connections]
            b = reg.batch()
            for _ in range(50):
                b.lookup(t)
            b.cleanup(t)
            proxy.freeze()
            started = time.monotonic()
            try:
                await b.execute()
            except OutcomeUnknownError as exc:
                return exc, time.monotonic() - started, kept
            finally:
                proxy.thaw()
            raise AssertionError("the stalled batch was not reported")

    err, took, kept = asyncio.run(scenario())
    assert kept and all(t == timeout for t in kept)
    assert timeout <= took < 1.5 * timeout + 0.5, took
    assert err.unknown == tuple(range(51))  # none of it is known to have run


def test_a_batch_cut_short_marks_later_entries_not_run(
    lossy: tuple[RedisServer, TcpProxy], direct: redis.Redis
) -> None:
    """A multi-step entry ends a round trip; the loss in the first round leaves the
    entries after it unsent, and the error says which ran and which did not."""
    server, proxy = lossy
    reg = ThreadRegistry(_no_retry_client(proxy), namespace="lost", ttl=600)
    t = reg.get_or_create("a.b")
    reg.lookup(t)
    b = reg.batch().cleanup(t).debug_dump().get_or_create("c.d")
    proxy.cut_after_request()
    with pytest.raises(OutcomeUnknownError) as info:
        b.execute()
    assert info.value.results[0] is UNKNOWN
    assert info.value.results[2] is NOT_RUN
    assert "c.d" not in _state(server, "lost").values()


# ---------------------------------------------------------------- large listpack hashes


@pytest.fixture(scope="module")
def listpack_server() -> Iterator[RedisServer]:
    """An operator raised hash-max-listpack-entries and hash-max-listpack-value (past the
    field the library writes to keep its hashes hashtables, lua/_write.lua ensure_keys):
    the hashes stay listpacks, and HSCAN returns a whole hash at once."""
    limits = ("--hash-max-listpack-entries", "100000", "--hash-max-listpack-value", "1024")
    with RedisServer(extra_args=list(limits)) as server:
        yield server


def test_the_threads_and_overrides_hashes_are_kept_hashtables(redis_server: RedisServer) -> None:
    """Below 512 entries Redis keeps a hash as a listpack, where a field that is not there
    is found by reading every entry: the library keeps both hashes hashtables (lua/_write.lua
    ensure_keys), also after a hash came back as a listpack (RESTORE, as a restart or a slot
    migration loads it), at the next write that raises the keys' expiry."""
    client = redis_server.client()
    client.flushall()
    reg = ThreadRegistry(client, namespace="ht", ttl=600)
    root = reg.initialize_root("acme")
    reg.extend_chain(root, "a")
    reg.register_thread(str(uuid.uuid4()), "ingress", "b")
    meta, threads, overrides = namespace_keys("ht")

    def encodings() -> set[bytes]:
        return {client.object("encoding", threads), client.object("encoding", overrides)}

    assert encodings() == {b"hashtable"}
    for key in (threads, overrides):
        ttl, payload = client.pttl(key), client.dump(key)
        client.delete(key)
        client.restore(key, ttl, payload)
    assert encodings() == {b"listpack"}
    client.hset(meta, "x", "0")  # (as once ttl/8 has passed: the next write raises the expiry)
    reg.extend_chain(root, "c")
    assert encodings() == {b"hashtable"}
    # nothing is left of the conversion: every field is an id (36), a floor (37) or ''
    assert max(len(k) for key in (threads, overrides) for k in client.hkeys(key)) <= 37
    assert reg.lookup_hops(reg.extend_chain(root, "a")) == ("system", "acme", "a")


def test_dump_pages_and_gc_steps_stay_bounded_on_a_large_listpack(listpack_server: RedisServer) -> None:
    client = listpack_server.client()
    client.flushall()
    reg = ThreadRegistry(client, namespace="lp", ttl=600)
    short = ThreadRegistry(client, namespace="lp", ttl=0.05)
    made = {reg.get_or_create(("bulk", f"t{i}")) for i in range(1500)}
    gone = {short.get_or_create(("old", f"t{i}")) for i in range(700)}
    _, threads, _ = namespace_keys("lp")
    assert client.object("encoding", threads) in (b"listpack", b"ziplist")

    # a dump page holds at most its page size, and the pages together hold everything
    page = reg._ops.dump_page("t", "0", 100)
    cursor, rows = reg._run(page)
    assert len(rows) <= 100 and cursor.startswith("L")
    pages = 1
    while cursor != "0":
        cursor, more = reg._run(reg._ops.dump_page("t", cursor, 100))
        rows += more
        pages += 1
    assert pages >= 15  # 1,500 live mappings, 100 a page
    ids = {row.thread_id for row in rows}
    assert made <= ids

    # a gc step examines a bounded page and reclaims at most what it is asked to
    time.sleep(0.1)
    _, expired = raw_mappings(reg)
    assert len(expired) > 100 and set(expired) <= gone
    cursor, steps, reclaimed = "0", 0, 0
    while True:
        n, cursor = reg._run(reg._ops.gc_step(cursor, 10))
        assert n <= 10
        reclaimed += n
        steps += 1
        if cursor == "0":
            break
        assert cursor.startswith("L")
    assert reclaimed == len(expired) and steps > len(expired) // 10
    assert set(reg.debug_dump()) == made


@pytest.mark.parametrize("api", ["sync"])  # counts the calls of the sync class
def test_gc_with_nothing_expired_walks_one_pass(make_registry: MakeRegistry, client: Any) -> None:
    """gc(limit=1) used to walk up to two passes in steps of 16 entries; it walks one, in
    steps of GC_PASS_STEP entries."""
    reg = make_registry()
    for i in range(1200):
        reg.get_or_create(("bulk", f"t{i}"))
    calls = 0
    run = reg._run

    def counting(call: Any) -> Any:
        nonlocal calls
        calls += 1
        return run(call)

    reg._run = counting  # type: ignore[method-assign]
    assert reg.gc(limit=1) == 0
    assert calls <= 1200 // GC_PASS_STEP + 3, calls


def test_a_gc_step_stopped_twice_in_one_page_resumes_it(make_registry: MakeRegistry) -> None:
    """Steps that each reach their limit inside the same page (a hash-table page of many
    expired entries, a small limit) resume it every time: the cursor of a step that
    stopped inside a page it had itself resumed used to carry two 'C' marks, which
    HSCAN refused ("invalid cursor")."""
    reg = make_registry(ttl=1.0)
    make_registry(namespace=reg.namespace, ttl=3600).get_or_create("keeper")  # keeps the hash
    # Chains over 64 bytes: the threads hash is a hash table whatever its size.
    long_hop = "h" * 70
    started = time.monotonic()
    batch = reg.batch()
    for i in range(GC_PASS_STEP - 30):
        batch.get_or_create((long_hop, f"t{i}"))
    batch.execute()
    assert time.monotonic() - started < 0.9, "the fill outlasted the ttl"
    time.sleep(1.1)  # every one of them has expired
    total, cursor = 0, "0"
    for _ in range(3):  # three steps of 7 in the first page
        n, cursor = reg._run(reg._ops.gc_step(cursor, 7))
        assert n == 7 and cursor != "0", (n, cursor)
        total += n
    while cursor != "0":
        n, cursor = reg._run(reg._ops.gc_step(cursor, 1000))
        total += n
    assert total == GC_PASS_STEP - 30  # (the long hop itself is a floor, not a mapping)
    assert set(reg.debug_dump().values()) == {"keeper"}


def test_a_batch_on_another_server_loads_every_script(make_registry: MakeRegistry, client: Any) -> None:
    """After a failover the transport reaches a server that has none of the scripts it
    loaded before, or only those other workers happened to load: it starts from none,
    so no later operation of a batch runs while an earlier one fails NOSCRIPT."""
    from registry.scripts import script

    reg = make_registry()
    t = reg.get_or_create("a.b")
    reg.batch().cleanup(reg.get_or_create("x.y")).lookup(t).execute()  # both scripts known loaded
    target = getattr(reg, "_target", reg)  # the async class behind the sync view
    transport = target._transport
    assert {script("cleanup").sha, script("lookup").sha} <= transport.loaded
    transport.loaded_server = ("the old primary",)
    client.script_flush()
    client.script_load(script("lookup").source)  # another worker loaded this one only
    assert reg.batch().cleanup(t).lookup(t).execute() == [None, None]
    assert transport.loaded_server != ("the old primary",)


@pytest.mark.parametrize("api", ["sync"])  # drives the sync class's steps directly
def test_a_gc_step_stopped_at_its_limit_resumes_its_page(make_registry: MakeRegistry) -> None:
    """A step that reached its limit inside the first page of a pass must not hand back
    cursor '0' (the end of a pass): Valkey answers HSCAN with larger pages than Redis,
    and gc(limit=1000) stopped after 512 there."""
    reg = make_registry(ttl=1.0)  # long enough that the sweeps on the way find nothing expired
    make_registry(namespace=reg.namespace, ttl=3600).get_or_create("keeper")  # keeps the hash
    started = time.monotonic()
    # Fewer entries than a step examines, so the first page is the whole hash (a page
    # that began at cursor 0 and was not cut: the cursor must not read as a pass's end).
    old = GC_PASS_STEP - 30
    for i in range(old):
        reg.get_or_create(("old", f"t{i}"))
    assert time.monotonic() - started < 0.9, "the fill outlasted the ttl"
    time.sleep(1.1)  # every one of them has expired
    n, cursor = reg._run(reg._ops.gc_step("0", 7))
    assert (n, cursor) == (7, "C0")
    total = n
    while cursor != "0":
        n, cursor = reg._run(reg._ops.gc_step(cursor, 1000))
        total += n
    assert total == old
