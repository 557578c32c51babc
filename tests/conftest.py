"""Fixtures: real redis-server processes started here, and fakeredis with Lua.

`backend` is parametrized over "redis" (a throwaway server, one per test session) and
"fake" (a fresh fakeredis server per test), so every behavioural test runs on both.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis

from registry import ThreadRegistry
from tests.servers import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["redis", "fake"])
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
    else:
        yield fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def make_registry(client: Any) -> Callable[..., ThreadRegistry]:
    """Factory: make_registry(namespace=..., ttl=...) on the test's client."""

    def make(namespace: str | None = None, ttl: float | None = 3600, **kwargs: Any) -> ThreadRegistry:
        return ThreadRegistry(client, namespace=namespace or f"ns-{uuid.uuid4().hex[:8]}", ttl=ttl, **kwargs)

    return make


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
