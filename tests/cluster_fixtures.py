"""Pytest fixtures for Redis Cluster and Sentinel topologies (a plugin module).

Load it from tests/conftest.py with::

    pytest_plugins = ["tests.cluster_fixtures"]

Fixtures:

- ``redis_cluster`` (module scope): a 3-primary / 3-replica RedisClusterGroup shared by a
  module's tests; tests may fail over or migrate slots on it as long as they leave every
  primary with a live replica.
- ``fresh_redis_cluster`` (function scope): a cluster of its own, for tests that kill
  nodes or otherwise leave the topology damaged.
- ``cluster_client``: a RedisCluster client on ``redis_cluster``, after checking the
  cluster is settled and flushing it (data and script caches).
- ``sentinel_group`` / ``fresh_sentinel_group``: the same pair for a SentinelGroup
  (one primary, two replicas, three sentinels).
- ``sentinel_master``: a ``master_for`` client on ``sentinel_group``, flushed.

Every group is stopped (SIGKILL, temp dir removed) when its fixture ends, also when the
test failed. A session-wide guard kills and reports any process a group left running.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest
import redis
import redis.cluster

from tests.topology import RedisClusterGroup, SentinelGroup, started_processes

G = TypeVar("G", RedisClusterGroup, SentinelGroup)


def _running(group: G, label: str) -> Iterator[G]:
    """Starts a topology group for a fixture's scope (`label`) and stops it after."""
    group.label = label
    group.start()
    try:
        yield group
    finally:
        group.stop()


def _cluster(label: str) -> Iterator[RedisClusterGroup]:
    yield from _running(RedisClusterGroup(), label)


def _sentinel(label: str) -> Iterator[SentinelGroup]:
    yield from _running(SentinelGroup(), label)


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterGroup]:
    yield from _cluster("module")


@pytest.fixture
def fresh_redis_cluster() -> Iterator[RedisClusterGroup]:
    yield from _cluster("function")


@pytest.fixture
def cluster_client(redis_cluster: RedisClusterGroup) -> Iterator[redis.cluster.RedisCluster]:
    redis_cluster.wait_settled(10.0, what="the shared cluster", require_replica_per_primary=True)
    redis_cluster.flushall()
    rc = redis_cluster.client()
    try:
        yield rc
    finally:
        rc.close()


@pytest.fixture(scope="module")
def sentinel_group() -> Iterator[SentinelGroup]:
    yield from _sentinel("module")


@pytest.fixture
def fresh_sentinel_group() -> Iterator[SentinelGroup]:
    yield from _sentinel("function")


@pytest.fixture
def sentinel_master(sentinel_group: SentinelGroup) -> Iterator[redis.Redis]:
    sentinel_group.wait_settled(timeout=10.0, what="the shared sentinel group")
    r = sentinel_group.master_for()
    r.flushall()
    r.script_flush()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="session", autouse=True)
def _topology_process_guard() -> Iterator[None]:
    """At the end of the session, no process started by a topology group may be running."""
    yield
    leaked = [p for p in started_processes() if p.poll() is None]
    for p in leaked:
        p.kill()
        p.wait()
    assert not leaked, f"{len(leaked)} redis processes outlived their group: {[p.args for p in leaked]}"
