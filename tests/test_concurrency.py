"""Many concurrent calls on one registry wait for a connection instead of failing.

redis-py's pools raise (MaxConnectionsError, "Too many connections") once
max_connections are lent; the registry holds calls beyond that back until one ends.
On a real server, on Redis Cluster, and on fakeredis (its pools have the same limit).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from registry import ThreadRegistry
from registry.aio import AsyncThreadRegistry
from registry.transport import connection_limit
from tests.servers import RedisServer


@pytest.fixture(scope="module")
def server() -> Any:
    with RedisServer() as s:
        yield s


async def _gather(reg: AsyncThreadRegistry, n: int) -> list[Any]:
    root = await reg.initialize_root("acme")
    ids = await asyncio.gather(*(reg.extend_chain(root, f"worker-{i % 50}") for i in range(n)))
    chains = await asyncio.gather(*(reg.lookup(tid) for tid in ids))
    # Removals and batches take the library's own pipeline path: they wait too.
    b = reg.batch()
    b.lookup(root)
    routes = await asyncio.gather(*(reg.prune_for_response(tid) for tid in ids[:500]), b.execute())
    return [ids, chains, routes]


def test_thousands_of_async_calls_through_from_url(server: RedisServer) -> None:
    async def main() -> None:
        async with AsyncThreadRegistry.from_url(server.url, namespace="many") as reg:
            assert connection_limit(reg.client) == 100  # redis-py's default pool size
            ids, chains, routes = await _gather(reg, 3000)
            assert len(set(ids)) == 50
            assert all(chain.startswith("system.acme.worker-") for chain in chains)
            assert all(route[0] == "acme" for route in routes[:-1])

    asyncio.run(main())


def test_async_calls_beyond_a_small_pool(server: RedisServer) -> None:
    async def main() -> None:
        async with AsyncThreadRegistry.from_url(server.url, namespace="small", max_connections=4) as reg:
            assert connection_limit(reg.client) == 4
            ids, _, _ = await _gather(reg, 1000)
            assert len(set(ids)) == 50

    asyncio.run(main())


def test_async_calls_on_fakeredis() -> None:
    async def main() -> None:
        reg = AsyncThreadRegistry(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), namespace="f")
        ids, _, _ = await _gather(reg, 1000)
        assert len(set(ids)) == 50

    asyncio.run(main())


def test_threads_beyond_a_small_pool(server: RedisServer) -> None:
    with ThreadRegistry.from_url(server.url, namespace="threads", max_connections=3) as reg:
        root = reg.initialize_root("acme")
        with ThreadPoolExecutor(max_workers=32) as pool:
            ids = list(pool.map(lambda i: reg.extend_chain(root, f"w{i % 10}"), range(600)))
            routes = list(pool.map(reg.prune_for_response, ids[:100]))
        assert len(set(ids)) == 10
        assert all(route.target == "acme" for route in routes)


def test_async_cluster_calls_beyond_its_node_pools(cluster_client: redis.cluster.RedisCluster) -> None:
    assert connection_limit(cluster_client) == 100  # the sync nodes' pools: redis-py's default
    node = cluster_client.get_default_node()

    async def main() -> None:
        client = redis.asyncio.cluster.RedisCluster(host=node.host, port=node.port, max_connections=5)
        async with AsyncThreadRegistry(client, namespace="clustered") as reg:
            assert connection_limit(client) == 5
            ids, _, _ = await _gather(reg, 1000)
            assert len(set(ids)) == 50

    asyncio.run(main())


def test_no_limit_where_the_pool_sets_none() -> None:
    assert connection_limit(object()) is None
    assert connection_limit(redis.Redis(connection_pool=redis.BlockingConnectionPool(max_connections=7))) == 7
