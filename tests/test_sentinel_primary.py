"""A connection from_sentinel makes is kept only when it reached a primary, and asks the
Sentinels again on every reconnect.

Right after a failover one Sentinel may still name the old primary, and once that server
is back (restarted as a replica of the new one, its data still syncing) the answer looks
healthy: a read there answers from a replica that may not have the data yet. Seen in
tests/test_failover.py (kill -9 of the primary under load): lookups of acknowledged
threads answered None just as the old primary came back. A real Sentinel cannot be made
to give a stale answer on cue, so here a stand-in for redis-py's Sentinel manager (its
`discover_master`) names a replica first and the primary after; the servers are real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from registry import ThreadRegistry
from registry.aio import AsyncThreadRegistry
from registry.sentinel import AsyncPrimaryConnection, PrimaryConnection
from tests.proxy import TcpProxy
from tests.servers import RedisServer


class StaleThenFresh:
    """Names `stale` first (a Sentinel behind a failover), then `fresh`."""

    def __init__(self, stale: tuple[str, int], fresh: tuple[str, int]) -> None:
        self.answers = [stale]
        self.fresh = fresh
        self.asked = 0

    def discover_master(self, service_name: str) -> tuple[str, int]:
        self.asked += 1
        return self.answers.pop() if self.answers else self.fresh


class AsyncStaleThenFresh(StaleThenFresh):
    async def discover_master(self, service_name: str) -> tuple[str, int]:  # type: ignore[override]
        return StaleThenFresh.discover_master(self, service_name)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary holding a thread, and a replica of another, empty primary."""
    primary = RedisServer().start()
    empty = RedisServer().start()
    assert empty.port is not None
    replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(empty.port)]).start()
    try:
        client = redis.Redis(port=replica.port)
        deadline = time.monotonic() + 10
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.05)
        yield primary, replica
    finally:
        replica.stop()
        empty.stop()
        primary.stop()


def address(server: RedisServer) -> tuple[str, int]:
    assert server.port is not None
    return ("127.0.0.1", server.port)


def test_a_stale_sentinel_answer_naming_a_replica_is_asked_again(
    servers: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = servers
    tid = ThreadRegistry(redis.Redis(port=primary.port), namespace="stale").get_or_create("a.b")

    def registry(connection_class: Any, manager: StaleThenFresh) -> ThreadRegistry:
        pool = redis.sentinel.SentinelConnectionPool(
            "svc", manager, connection_class=connection_class, retry=Retry(NoBackoff(), 3)
        )
        return ThreadRegistry(redis.Redis(connection_pool=pool), namespace="stale")

    # redis-py's own connection reads from the replica: the thread looks unknown.
    plain = StaleThenFresh(address(replica), address(primary))
    assert registry(redis.sentinel.SentinelManagedConnection, plain).lookup(tid) is None
    # Ours refuses the replica, asks again, and reads from the primary.
    manager = StaleThenFresh(address(replica), address(primary))
    reg = registry(PrimaryConnection, manager)
    assert reg.lookup(tid) == "a.b"
    assert manager.asked == 2
    assert reg.extend_chain(tid, "c") is not None  # writes go to the primary too


def test_a_stale_sentinel_answer_naming_a_replica_is_asked_again_async(
    servers: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = servers
    tid = ThreadRegistry(redis.Redis(port=primary.port), namespace="stale-aio").get_or_create("a.b")

    async def scenario(connection_class: Any, manager: AsyncStaleThenFresh) -> str | None:
        pool = redis.asyncio.sentinel.SentinelConnectionPool(
            "svc", manager, connection_class=connection_class, retry=AsyncRetry(NoBackoff(), 3)
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        async with AsyncThreadRegistry(client, namespace="stale-aio") as reg:
            return await reg.lookup(tid)

    plain = AsyncStaleThenFresh(address(replica), address(primary))
    assert asyncio.run(scenario(redis.asyncio.sentinel.SentinelManagedConnection, plain)) is None
    manager = AsyncStaleThenFresh(address(replica), address(primary))
    assert asyncio.run(scenario(AsyncPrimaryConnection, manager)) == "a.b"
    assert manager.asked == 2


def test_from_sentinel_uses_the_primary_checking_connections() -> None:
    sync = ThreadRegistry.from_sentinel([("127.0.0.1", 1)], "svc", namespace="n")
    assert sync.client.connection_pool.connection_class is PrimaryConnection
    aio = AsyncThreadRegistry.from_sentinel([("127.0.0.1", 1)], "svc", namespace="n")
    assert aio.client.connection_pool.connection_class is AsyncPrimaryConnection


class Switchable:
    """A stand-in for the Sentinel manager whose answer the test sets."""

    def __init__(self, answer: tuple[str, int]) -> None:
        self.answer = answer
        self.asked = 0

    def discover_master(self, service_name: str) -> tuple[str, int]:
        self.asked += 1
        return self.answer


class AsyncSwitchable(Switchable):
    async def discover_master(self, service_name: str) -> tuple[str, int]:  # type: ignore[override]
        return Switchable.discover_master(self, service_name)


# The failover these tests stage: the client's connection reaches the primary through an
# address (a proxy) that, after the failover, leads to a replica still syncing (the old
# primary restarted at its own address); the Sentinels name the new primary. The call in
# flight loses its reply, and redis-py retries it on the same connection object.


def test_a_retried_call_after_a_failover_asks_the_sentinels_where_the_primary_is(
    servers: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = servers
    tid = ThreadRegistry(redis.Redis(port=primary.port), namespace="moved").get_or_create("a.b")

    def lookup_across_the_switch(connection_class: Any) -> tuple[str | None, int]:
        with TcpProxy("127.0.0.1", address(primary)[1]) as proxy:
            manager = Switchable(("127.0.0.1", proxy.port))
            pool = redis.sentinel.SentinelConnectionPool(
                "svc", manager, connection_class=connection_class, retry=Retry(NoBackoff(), 3)
            )
            reg = ThreadRegistry(redis.Redis(connection_pool=pool), namespace="moved")
            assert reg.lookup(tid) == "a.b"  # connected, through the proxy, to the primary
            proxy.target_port = address(replica)[1]  # the old address now leads to a replica
            manager.answer = address(primary)  # and the Sentinels name the new primary
            asked = manager.asked
            proxy.cut_after_request(1)  # the next call runs, and its reply is lost
            found = reg.lookup(tid)
            pool.disconnect()
            return found, manager.asked - asked

    # redis-py's own connection reconnects to the address it had, and reads the replica.
    assert lookup_across_the_switch(redis.sentinel.SentinelManagedConnection) == (None, 0)
    # Ours asks the Sentinels, and reads from the primary.
    found, asked = lookup_across_the_switch(PrimaryConnection)
    assert found == "a.b"
    assert asked >= 1


def test_a_retried_call_after_a_failover_asks_the_sentinels_where_the_primary_is_async(
    servers: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = servers
    tid = ThreadRegistry(redis.Redis(port=primary.port), namespace="moved-aio").get_or_create("a.b")

    async def lookup_across_the_switch(connection_class: Any) -> tuple[str | None, int]:
        with TcpProxy("127.0.0.1", address(primary)[1]) as proxy:
            manager = AsyncSwitchable(("127.0.0.1", proxy.port))
            pool = redis.asyncio.sentinel.SentinelConnectionPool(
                "svc", manager, connection_class=connection_class, retry=AsyncRetry(NoBackoff(), 3)
            )
            client = redis.asyncio.Redis(connection_pool=pool)
            async with AsyncThreadRegistry(client, namespace="moved-aio") as reg:
                assert await reg.lookup(tid) == "a.b"
                proxy.target_port = address(replica)[1]
                manager.answer = address(primary)
                asked = manager.asked
                proxy.cut_after_request(1)
                found = await reg.lookup(tid)
                return found, manager.asked - asked

    plain = redis.asyncio.sentinel.SentinelManagedConnection
    assert asyncio.run(lookup_across_the_switch(plain)) == (None, 0)
    found, asked = asyncio.run(lookup_across_the_switch(AsyncPrimaryConnection))
    assert found == "a.b"
    assert asked >= 1
