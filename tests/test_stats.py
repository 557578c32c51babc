"""reg.stats(): counts, memory, deadlines, server facts and warnings; sync and async, on a
real server, fakeredis, a cluster (facts from the slot's owner) and Sentinel."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from registry import Stats, ThreadRegistry
from registry.aio import AsyncThreadRegistry
from registry.stats import collect, run_sync
from tests.servers import RedisServer
from tests.topology import RedisClusterGroup


def fill(client: Any, namespace: str = "st") -> dict[str, Any]:
    """2 permanent roots + 1 ttl=None thread, 4 live expiring, 2 overrides, 3 expired."""
    reg = ThreadRegistry(client, namespace=namespace, ttl=3600)
    root = reg.initialize_root("acme")
    reg.initialize_table_root("orders", "acme")
    a = reg.extend_chain(root, "console")
    reg.extend_chain(a, "worker")
    reg.register_thread(str(uuid.uuid4()), "mail", "inbox")  # an expiring override
    forever = ThreadRegistry(client, namespace=namespace, ttl=None)
    forever.register_thread(str(uuid.uuid4()), "cron", "nightly")  # a permanent override
    short = ThreadRegistry(client, namespace=namespace, ttl=0.05)
    for i in range(3):
        short.start_chain("brief", f"t{i}")
    time.sleep(0.2)
    return {"reg": reg, "root": root}


def check_counts(s: Stats) -> None:
    # live: console, worker, mail.inbox under the root (system.acme.mail.inbox)
    assert s.threads_live == 3
    # the root, the table root, the ttl=None thread
    assert s.threads_permanent == 3
    assert s.overrides == 2
    # three expired mappings; their parent [brief] is a floor that expired with them
    assert s.expired_pending == 4
    now_ms = time.time() * 1000
    assert s.earliest_deadline_ms is not None and s.latest_deadline_ms is not None
    assert now_ms + 3500_000 < s.earliest_deadline_ms <= s.latest_deadline_ms < now_ms + 3700_000


@pytest.mark.parametrize("backend", ["redis", "fake"], indirect=True)
def test_stats_counts_what_the_namespace_holds(client: Any, backend: str) -> None:
    made = fill(client)
    s = made["reg"].stats()
    check_counts(s)
    if backend == "redis":
        assert s.memory_bytes is not None and s.memory_bytes > 300
        assert s.server.version and s.server.version[0].isdigit()
        assert s.server.maxmemory_policy == "noeviction"
        assert (s.server.role, s.server.connected_replicas) == ("primary", 0)
        assert (s.server.aof, s.server.rdb) == (False, False)  # the fixtures persist nothing
        assert any("no persistence" in w for w in s.warnings)
    else:  # fakeredis has no INFO, MEMORY or CONFIG: unknown, and said
        assert s.memory_bytes is None
        assert s.server.version is None and s.server.maxmemory_policy is None
        assert any("does not answer INFO" in w for w in s.warnings)
    # gc takes the expired entries away; the counts follow
    made["reg"].gc()
    assert made["reg"].stats().expired_pending == 0


@pytest.mark.parametrize("backend", ["redis", "fake"], indirect=True)
def test_pages_of_two_add_up_to_the_same(client: Any) -> None:
    made = fill(client)
    reg = made["reg"]
    for i in range(40):
        reg.start_chain("many", f"x{i}")
    whole, paged = reg.stats(), run_sync(reg, collect(reg._ops, page=2))
    assert (whole.threads_live, whole.threads_permanent, whole.overrides, whole.expired_pending) == (
        paged.threads_live,
        paged.threads_permanent,
        paged.overrides,
        paged.expired_pending,
    )
    assert whole.threads_live == 43


def test_async_stats_are_the_same(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.flushall()
    made = fill(client)

    async def read() -> Stats:
        async with AsyncThreadRegistry(
            redis.asyncio.Redis.from_url(redis_server.url), namespace="st"
        ) as areg:
            return await areg.stats()

    a = asyncio.run(read())
    check_counts(a)
    s = made["reg"].stats()
    assert (a.threads_live, a.threads_permanent, a.overrides, a.server.version) == (
        s.threads_live,
        s.threads_permanent,
        s.overrides,
        s.server.version,
    )


def test_async_stats_on_fakeredis() -> None:
    server = fakeredis.FakeServer()
    fill(fakeredis.FakeRedis(server=server))

    async def read() -> Stats:
        async with AsyncThreadRegistry(fakeredis.FakeAsyncRedis(server=server), namespace="st") as areg:
            return await areg.stats()

    check_counts(asyncio.run(read()))


def test_an_eviction_policy_and_a_full_server_are_warned_about(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.flushall()
    reg = ThreadRegistry(client, namespace="st")
    reg.start_chain("a", "b")
    try:
        client.config_set("maxmemory-policy", "allkeys-lru")
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(int(used / 0.95)))
        warnings = reg.stats().warnings
        assert any("maxmemory-policy is allkeys-lru" in w and "noeviction" in w for w in warnings)
        assert any("of maxmemory" in w and "OOM" in w for w in warnings)
        assert not any("maxmemory is not set" in w for w in warnings)
    finally:
        client.config_set("maxmemory", "0")
        client.config_set("maxmemory-policy", "noeviction")
    warnings = reg.stats().warnings
    assert not any("maxmemory-policy" in w for w in warnings)
    assert any("maxmemory is not set" in w for w in warnings)


def test_an_empty_namespace_is_named_in_the_warnings(redis_server: RedisServer) -> None:
    redis_server.client().flushall()
    s = ThreadRegistry(redis_server.client(), namespace="typo").stats()
    assert s.threads_live == s.threads_permanent == 0
    assert s.warnings[0] == "namespace 'typo' holds nothing (never used, cleared, or expired)"


def test_stats_json_has_exactly_the_fields(redis_server: RedisServer) -> None:
    redis_server.client().flushall()
    fill(redis_server.client())
    done = subprocess.run(
        [sys.executable, "-m", "registry", "stats", "--url", redis_server.url, "--namespace", "st", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("THREAD_REGISTRY_")},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and done.stderr == ""
    data = json.loads(lines[0])
    assert list(data) == [
        "threads_live",
        "threads_permanent",
        "overrides",
        "expired_pending",
        "memory_bytes",
        "earliest_deadline_ms",
        "latest_deadline_ms",
        "server",
        "warnings",
    ]
    assert isinstance(data["server"], dict) and data["server"]["maxmemory_policy"] == "noeviction"
    assert isinstance(data["warnings"], list) and all(isinstance(w, str) for w in data["warnings"])
    assert (data["threads_live"], data["threads_permanent"], data["overrides"]) == (3, 3, 2)

    human = subprocess.run(
        [sys.executable, "-m", "registry", "stats", "--url", redis_server.url, "--namespace", "st"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert human.returncode == 0
    assert "3 live, 3 permanent, 2 overrides" in human.stdout
    assert "maxmemory-policy noeviction" in human.stdout


def test_on_a_cluster_the_facts_come_from_the_slots_owner(redis_cluster: RedisClusterGroup) -> None:
    redis_cluster.wait_settled(10.0, what="the shared cluster", require_replica_per_primary=True)
    redis_cluster.flushall()
    rc = redis_cluster.client()
    reg = ThreadRegistry(rc, namespace="st")
    reg.start_chain("a", "b")
    owner = redis_cluster.primary_for_key("threadreg:{st}:meta")
    others = [p for p in redis_cluster.primaries() if p.port != owner.port]
    try:
        for other in others:  # only the other primaries evict: no warning about them
            other.client().config_set("maxmemory-policy", "allkeys-lru")
        s = reg.stats()
        assert s.threads_live == 1 and s.memory_bytes
        assert (s.server.role, s.server.connected_replicas) == ("primary", 1)
        assert not any("maxmemory-policy" in w for w in s.warnings)
        owner.client().config_set("maxmemory-policy", "volatile-ttl")
        assert any("maxmemory-policy is volatile-ttl" in w for w in reg.stats().warnings)
    finally:
        for p in redis_cluster.primaries():
            p.client().config_set("maxmemory-policy", "noeviction")
        rc.close()


def test_through_sentinel_a_primary_with_replicas_and_no_persistence_is_warned_about(
    sentinel_master: redis.Redis,
) -> None:
    reg = ThreadRegistry(sentinel_master, namespace="st")
    reg.start_chain("a", "b")
    s = reg.stats()
    assert (s.server.role, s.server.connected_replicas) == ("primary", 2)
    assert any("no persistence on a primary with 2 replica(s)" in w for w in s.warnings)
