"""Fixtures: real redis-server processes started here, and fakeredis with Lua.

`backend` is parametrized over "redis" (a throwaway server, one per test session) and
"fake" (a fresh fakeredis server per test), so every behavioural test runs on both.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

import registry.default
from registry import ThreadRegistry
from registry.aio import AsyncThreadRegistry
from tests.servers import RedisServer
from tests.sync_view import SyncView


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


pytest_plugins = ["tests.cluster_fixtures"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test using `backend` runs on a real server and on fakeredis; the behaviour
    suite's modules (RUN_ON_CLUSTER = True) also on a 3-primary Redis Cluster."""
    explicit = any("backend" in str(mark.args[0]) for mark in metafunc.definition.iter_markers("parametrize"))
    if "backend" in metafunc.fixturenames and not explicit:
        backends = ["redis", "fake"]
        if getattr(metafunc.module, "RUN_ON_CLUSTER", False):
            backends.append("cluster")
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(backend: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A client on a clean database: the session's real server (flushed), or a new fakeredis."""
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        c = server.client()
        c.flushall()
        c.script_flush()
        yield c
        c.close()
    elif backend == "cluster":
        yield request.getfixturevalue("cluster_client")
    else:
        yield fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def event_loop_for_view() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def make_registry(client: Any, api: str, request: pytest.FixtureRequest) -> Callable[..., ThreadRegistry]:
    """Factory: make_registry(namespace=..., ttl=...) on the test's server.

    With api="async" it returns an AsyncThreadRegistry (on an asyncio client of the same
    server) behind a SyncView, so the same test body checks both classes.
    """
    if api == "sync":

        def make(namespace: str | None = None, ttl: float | None = 3600, **kwargs: Any) -> ThreadRegistry:
            return ThreadRegistry(
                client, namespace=namespace or f"ns-{uuid.uuid4().hex[:8]}", ttl=ttl, **kwargs
            )

        return make

    loop: asyncio.AbstractEventLoop = request.getfixturevalue("event_loop_for_view")
    made: list[SyncView] = []

    def make_async(namespace: str | None = None, ttl: float | None = 3600, **kwargs: Any) -> ThreadRegistry:
        if isinstance(client, redis.cluster.RedisCluster):
            node = client.get_default_node()
            aclient: Any = redis.asyncio.cluster.RedisCluster(host=node.host, port=node.port)
        elif isinstance(client, fakeredis.FakeRedis):
            aclient = fakeredis.FakeAsyncRedis(server=client.connection_pool.connection_kwargs["server"])
        else:
            aclient = redis.asyncio.Redis(
                connection_pool=redis.asyncio.ConnectionPool(**client.connection_pool.connection_kwargs)
            )
        areg = AsyncThreadRegistry(
            aclient, namespace=namespace or f"ns-{uuid.uuid4().hex[:8]}", ttl=ttl, **kwargs
        )
        view = SyncView(areg, loop)
        made.append(view)
        return view  # type: ignore[return-value]

    yield_views = made
    request.addfinalizer(lambda: [view.close() for view in yield_views])
    return make_async


@pytest.fixture
def no_global_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start and end without a process-wide instance, whatever other tests did."""
    monkeypatch.setattr(registry.default, "_instance", None)
    monkeypatch.delenv(registry.default.URL_ENV, raising=False)
    yield
    registry.default._instance = None


@pytest.fixture
def reg(make_registry: Callable[..., ThreadRegistry]) -> ThreadRegistry:
    return make_registry(namespace="acme")


def keyspace(client: redis.Redis) -> dict[bytes, Any]:
    """Every key with its type, value and TTL presence: a snapshot to compare before/after."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        value: Any
        if kind == "hash":
            value = client.hgetall(key)
        elif kind == "string":
            value = client.get(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = client.smembers(key)
        else:
            value = kind
        out[key] = (kind, value, client.pttl(key) > 0)
    return out
