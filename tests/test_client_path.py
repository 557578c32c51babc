"""The client side's shortcuts give what the long way gives: the same bytes on the wire,
the same ids, the same waiting for connections."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from registry import ThreadRegistry, UnknownThreadError
from registry.aio import AsyncThreadRegistry
from registry.operations import random_uuid
from registry.scripts import script
from registry.transport import _ascii_compatible, _pack, evalsha_head, sends_on_its_pool
from tests.proxy import TcpProxy
from tests.servers import RedisServer

KEYS = ("threadreg:{ns}:meta", "threadreg:{ns}:threads", "threadreg:{ns}:overrides")
COMMANDS: list[tuple[Any, ...]] = [
    ("MULTI",),
    ("SCRIPT", "LOAD", "return 1 -- " + "x" * 7000),  # over redis-py's 6000-byte chunking
    ("EXEC",),
    ("EVALSHA", "a" * 40, 3, *KEYS, "86400000", str(uuid.uuid4()), "0", "", "hôp \u00e9\u4e2d\U0001f600", ""),
    ("EVALSHA", b"b" * 40, b"3", *(k.encode() for k in KEYS), "x"),
    ("ASKING",),
    ("HINCRBY", KEYS[0], "ack", 1),
    ("WAIT", 2, 1000),
]


def test_random_ids_are_version_4_uuids() -> None:
    seen = {random_uuid() for _ in range(5000)}
    assert len(seen) == 5000
    for text in seen:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # every variant digit occurs: two random bits are kept there
    assert {text[19] for text in seen} == set("89ab")


@pytest.mark.parametrize("connection_class", [redis.Connection, redis.UnixDomainSocketConnection])
def test_batches_are_packed_as_redis_py_packs_them(connection_class: Any) -> None:
    conn = connection_class()
    assert b"".join(_pack(conn, COMMANDS)) == b"".join(conn.pack_commands(COMMANDS))


def test_async_batches_are_packed_as_redis_py_packs_them() -> None:
    conn = redis.asyncio.Connection()
    assert b"".join(_pack(conn, COMMANDS)) == b"".join(conn.pack_commands(COMMANDS))


def test_a_connection_with_its_own_packing_or_encoding_keeps_it() -> None:
    class Own(redis.Connection):
        def pack_commands(self, commands: Any) -> Any:
            return ["own"]

    assert _pack(Own(), COMMANDS) == ["own"]
    latin = redis.Connection(encoding="latin-1")
    commands = [("EVALSHA", "a" * 40, 3, *KEYS, "h\u00f4p")]
    assert b"".join(_pack(latin, commands)) == b"".join(latin.pack_commands(commands))
    assert b"h\xf4p" in b"".join(_pack(latin, commands))


def test_the_evalsha_head_is_what_the_client_would_encode() -> None:
    s = script("lookup")
    conn = redis.Connection()
    args = (str(uuid.uuid4()),)
    long_way = conn.pack_command("EVALSHA", s.sha, 3, *KEYS, *args)
    assert conn.pack_command(*evalsha_head(s, KEYS, True), *args) == long_way
    assert evalsha_head(s, KEYS, False) == ("EVALSHA", s.sha, 3, *KEYS)
    assert _ascii_compatible(redis.Redis())
    assert not _ascii_compatible(redis.Redis(encoding="utf-16"))
    assert not _ascii_compatible(object())


def test_a_call_that_fails_gives_its_connection_back(redis_server: RedisServer) -> None:
    """A pool of two connections, and calls that fail on the server: each gives its slot
    back (checked after each, so a leak fails here instead of hanging a later call); then
    four threads share the two connections."""
    pool = redis.ConnectionPool(host="127.0.0.1", port=redis_server.port, max_connections=2)
    reg = ThreadRegistry(redis.Redis(connection_pool=pool), namespace="slots", strict=True)
    root = reg.initialize_root("acme")
    slots = reg._transport._slots
    assert slots is not None
    for _ in range(3):
        with pytest.raises(UnknownThreadError):
            reg.extend_chain(str(uuid.uuid4()), "h")  # strict: refused by the script
        assert slots.qsize() == 2
        with pytest.raises(UnknownThreadError):
            reg.batch().extend_chain(str(uuid.uuid4()), "h").execute()  # the pipeline path
        assert slots.qsize() == 2

    with ThreadPoolExecutor(4) as ex:
        ids = list(ex.map(lambda i: reg.extend_chain(root, f"h{i % 7}"), range(200), timeout=60))
    assert len(set(ids)) == 7 and slots.qsize() == 2
    reg.clear()


def test_async_calls_that_fail_give_their_slots_back(redis_server: RedisServer) -> None:
    async def main() -> None:
        pool = redis.asyncio.ConnectionPool(host="127.0.0.1", port=redis_server.port, max_connections=2)
        reg = AsyncThreadRegistry(redis.asyncio.Redis(connection_pool=pool), namespace="aslots", strict=True)
        root = await reg.initialize_root("acme")
        bad = [reg.extend_chain(str(uuid.uuid4()), "h") for _ in range(20)]
        good = [reg.extend_chain(root, f"h{i % 5}") for i in range(20)]
        out = await asyncio.wait_for(asyncio.gather(*bad, *good, return_exceptions=True), 60)
        assert all(isinstance(r, UnknownThreadError) for r in out[:20])
        assert len(set(out[20:])) == 5
        slots = reg._transport._slots
        assert slots is not None and slots._value == 2
        await reg.clear()
        await reg.aclose()

    asyncio.run(main())


def test_the_client_cost_benchmark_runs_without_a_server() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.client_cost", "--fake", "--rounds", "1", "--calls", "200"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = {line[:32].strip() for line in done.stdout.splitlines()[2:]}
    assert {"floor extend", "extend_chain", "batch100 lookup", "async batch100 extend_chain"} <= rows


def test_the_client_cost_and_floor_budget_benchmarks_run_on_a_server(redis_server: RedisServer) -> None:
    for module in ("benchmarks.client_cost", "benchmarks.floor_budget"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--url", redis_server.url, "--rounds", "1", "--calls", "20"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        rows = {line.split("  ")[0].strip() for line in done.stdout.splitlines()}
        assert {"floor on pool", "extend_chain_new"} <= rows, done.stdout


class _Counted(redis.Redis):
    """A client whose execute_command something wraps (as instrumentation does)."""

    seen = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if args[0] == "EVALSHA":
            type(self).seen += 1
        return super().execute_command(*args, **options)


class _Wrapped(redis.Redis):
    """The same by a decorator (functools.wraps, as wrapt does, leaves __wrapped__)."""

    seen = 0

    @functools.wraps(redis.Redis.execute_command)
    def execute_command(self, *args: Any, **options: Any) -> Any:
        if args[0] == "EVALSHA":
            type(self).seen += 1
        return redis.Redis.execute_command(self, *args, **options)


def test_single_calls_go_on_the_pool_unless_something_watches_execute_command(
    redis_server: RedisServer,
) -> None:
    """A plain client's single calls go on a pooled connection, not through execute_command
    (which costs about a fifth of a loopback round trip); a client whose execute_command
    is overridden or wrapped sees every call there; all give the same ids."""
    plain = redis.Redis(host="127.0.0.1", port=redis_server.port)
    seen: list[Any] = []
    passed_on = plain.execute_command

    def watched(*args: Any, **options: Any) -> Any:  # (on the instance: the class's is stock)
        seen.append(args[0])
        return passed_on(*args, **options)

    plain.execute_command = watched  # type: ignore[method-assign]
    assert sends_on_its_pool(plain)
    reg = ThreadRegistry(plain, namespace="onpool")
    reg.clear()
    root = reg.initialize_root("acme")
    reg.extend_chain(root, "warm")
    reg.lookup(root)
    seen.clear()  # (a script the server did not have yet was loaded through it: NOSCRIPT)
    child = reg.extend_chain(root, "router")
    assert reg.lookup(child) == "system.acme.router"
    assert reg.prune_for_response(child) == ("acme", root)
    assert seen == []
    in_use = plain.connection_pool._in_use_connections
    assert len(in_use) == 0  # every connection given back

    for cls in (_Counted, _Wrapped):
        client = cls(host="127.0.0.1", port=redis_server.port)
        assert not sends_on_its_pool(client)
        other = ThreadRegistry(client, namespace="onpool")
        assert other.extend_chain(root, "router") == child
        assert other.lookup(child) == "system.acme.router"
        assert cls.seen == 2
    single = redis.Redis(host="127.0.0.1", port=redis_server.port, single_connection_client=True)
    assert not sends_on_its_pool(single)
    assert ThreadRegistry(single, namespace="onpool").extend_chain(root, "router") == child
    reg.clear()


def test_a_call_on_the_pool_follows_the_clients_retry_policy(redis_server: RedisServer) -> None:
    """A connection cut after the server ran the call: with retries the call is sent
    again on a new connection (the same id: the chain has one); without, redis-py's
    ConnectionError, and the connection is given back either way."""
    with TcpProxy("127.0.0.1", redis_server.port or 0) as proxy:
        retrying = redis.Redis(host="127.0.0.1", port=proxy.port, retry=Retry(NoBackoff(), 2))
        assert sends_on_its_pool(retrying)
        reg = ThreadRegistry(retrying, namespace="poolretry")
        root = reg.initialize_root("acme")
        first = reg.extend_chain(root, "a")
        proxy.cut_after_request()
        assert reg.extend_chain(root, "a") == first
        assert len(retrying.connection_pool._in_use_connections) == 0

        once = redis.Redis(host="127.0.0.1", port=proxy.port, retry=Retry(NoBackoff(), 0))
        other = ThreadRegistry(once, namespace="poolretry")
        assert other.lookup(first) == "system.acme.a"
        proxy.cut_after_request()
        with pytest.raises(redis.ConnectionError):
            other.extend_chain(root, "b")
        assert len(once.connection_pool._in_use_connections) == 0
        assert other.lookup(reg.extend_chain(root, "b")) == "system.acme.b"  # (it ran before the cut)
        reg.clear()


@pytest.mark.parametrize(
    "options", [{"decode_responses": True}, {"protocol": 3}, {"protocol": 3, "decode_responses": True}]
)
def test_calls_on_the_pool_read_every_reply_shape(redis_server: RedisServer, options: dict[str, Any]) -> None:
    """Decoded replies and RESP3 replies (tables, nil, errors) come back as they do
    through execute_command, on the pool's connections."""
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, **options)
    assert sends_on_its_pool(client)
    reg = ThreadRegistry(client, namespace="shapes", strict=True)
    reg.clear()
    root = reg.initialize_root("acme")
    child = reg.extend_chain(root, "router")
    assert reg.extend_chain(root, "router") == child
    assert reg.lookup(child) == "system.acme.router"
    assert reg.lookup(str(uuid.uuid4())) is None  # nil
    assert reg.prune_for_response(child) == ("acme", root)  # a table
    assert reg.prune_for_response(child) == ("acme", root)  # (on the pool, after the plan loaded it)
    with pytest.raises(UnknownThreadError):
        reg.extend_chain(str(uuid.uuid4()), "h")  # an error reply
    tid = str(uuid.uuid4())
    assert reg.register_thread(tid, "ext", "in") == tid
    assert reg.get_or_create("system.acme.router") == child
    reg.cleanup(child)
    assert reg.lookup(child) is None
    assert len(client.connection_pool._in_use_connections) == 0
    reg.clear()
