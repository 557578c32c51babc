"""Beyond one server, under faults: acknowledged writes with a frozen replication link,
batch order through a slot migration, one primary down, a namespace through its slot's
migration, errors no retry can heal, and connections the library must close.

Real servers only (the binary from $REDIS_SERVER_BIN, so the same tests run on Redis
7.0, 8.x and Valkey); a TCP proxy stands between a replica and its primary to freeze
the replication link.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

from registry import DurabilityError, RootConflictError, ThreadRegistry
from registry.aio import AsyncThreadRegistry
from registry.keys import namespace_keys
from tests.proxy import TcpProxy
from tests.servers import RedisServer
from tests.topology import RedisClusterGroup, SentinelGroup

pytestmark = pytest.mark.failover


def new_id() -> str:
    return str(uuid.uuid4())


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "a condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------- acknowledged writes


class Replicated:
    """A primary and one replica whose replication link runs through a proxy."""

    def __init__(self) -> None:
        self.primary = RedisServer().start()
        self.proxy = TcpProxy("127.0.0.1", self.primary.port or 0).start()
        self.replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(self.proxy.port)]).start()
        self.wait_synced()

    def wait_synced(self) -> None:
        primary = self.primary.client()

        def synced() -> bool:
            info = primary.info("replication")
            offset = info["master_repl_offset"]
            slave = info.get("slave0")
            return bool(slave) and slave["state"] == "online" and int(slave["offset"]) >= offset

        primary.execute_command("HINCRBY", "sync-probe", "n", 1)  # something to acknowledge
        wait_for(synced, 20, "the replica to catch up")
        primary.close()

    def stop(self) -> None:
        self.replica.stop()
        self.proxy.stop()
        self.primary.stop()


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicated]:
    group = Replicated()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def frozen(replicated: Replicated) -> Iterator[Replicated]:
    """The replication link frozen for one test, thawed and caught up after it."""
    replicated.primary.client().flushall()
    replicated.wait_synced()
    replicated.proxy.freeze()
    try:
        yield replicated
    finally:
        replicated.proxy.thaw()
        replicated.wait_synced()


def acked(server: RedisServer, namespace: str = "acked", **kwargs: Any) -> ThreadRegistry:
    return ThreadRegistry(
        server.client(), namespace=namespace, ttl=600, wait_replicas=1, wait_timeout_ms=150, **kwargs
    )


def test_a_call_that_changed_nothing_is_not_acknowledged_for_writes_no_replica_has(
    frozen: Replicated,
) -> None:
    """Worker 1 creates the root (no replica gets it: DurabilityError). Worker 2, another
    connection, asks for the same root: the script changes nothing, and on servers that
    answer WAIT at once for a connection that replicated nothing (Redis 8.x, Valkey) it
    used to be acknowledged, though no replica had the root it returned."""
    one, two = acked(frozen.primary), acked(frozen.primary)
    with pytest.raises(DurabilityError) as first:
        one.initialize_root("acme")
    root = first.value.results[0]
    with pytest.raises(DurabilityError) as second:
        two.initialize_root("acme")
    assert second.value.results == [root]
    with pytest.raises(DurabilityError):
        two.cleanup(new_id())  # a cleanup that removes nothing
    with pytest.raises(DurabilityError):
        two.batch().initialize_root("acme").lookup(root).execute()


def test_acknowledged_once_the_link_is_back(replicated: Replicated) -> None:
    replicated.primary.client().flushall()
    reg = acked(replicated.primary)
    root = reg.initialize_root("acme")
    assert reg.initialize_root("acme") == root
    assert reg.batch().extend_chain(root, "a").cleanup(new_id()).execute()[1] is None


def test_an_operation_error_does_not_hide_a_missing_acknowledgement(frozen: Replicated) -> None:
    reg = acked(frozen.primary)
    with pytest.raises(DurabilityError):
        reg.initialize_root("acme")
    with pytest.raises(DurabilityError) as info:
        reg.batch().get_or_create("a.b").initialize_root("other").execute()
    assert isinstance(info.value.results[1], RootConflictError)


def test_a_wait_longer_than_the_socket_timeout_is_a_durability_error(frozen: Replicated) -> None:
    """The WAIT reply times out on the socket: the calls are done and are not sent again;
    the caller learns the write is not acknowledged (it used to run the script again and
    again, then raise TimeoutError)."""
    client = redis.Redis(host="127.0.0.1", port=frozen.primary.port, socket_timeout=0.3)
    reg = ThreadRegistry(client, namespace="acked", ttl=600, wait_replicas=1, wait_timeout_ms=3000)
    before = _evalsha_calls(frozen.primary)
    started = time.monotonic()
    with pytest.raises(DurabilityError) as info:
        reg.get_or_create("a.b")
    assert time.monotonic() - started < 3
    assert _evalsha_calls(frozen.primary) - before == 1  # the script ran once
    assert reg.lookup(info.value.results[0]) == "a.b"


def _evalsha_calls(server: RedisServer) -> int:
    stats = server.client().info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def test_async_acknowledged_call_that_changed_nothing(frozen: Replicated) -> None:
    async def scenario() -> None:
        async with AsyncThreadRegistry(
            redis.asyncio.Redis(host="127.0.0.1", port=frozen.primary.port),
            namespace="acked",
            wait_replicas=1,
            wait_timeout_ms=150,
        ) as reg:
            with pytest.raises(DurabilityError):
                await reg.get_or_create("a.b")
            with pytest.raises(DurabilityError):
                await reg.get_or_create("a.b")  # exists now: changes nothing

    asyncio.run(scenario())


# ---------------------------------------------------------------- errors no retry heals


def test_a_wrong_password_is_not_retried() -> None:
    with RedisServer() as server:
        server.client().config_set("requirepass", "right")
        reg = ThreadRegistry.from_url(
            f"redis://:wrong@127.0.0.1:{server.port}/0", namespace="x", retry_seconds=20
        )
        started = time.monotonic()
        with pytest.raises(redis.AuthenticationError):
            reg.lookup(new_id())
        with pytest.raises(redis.AuthenticationError):
            reg.batch().get_or_create("a.b").execute()
        assert time.monotonic() - started < 5
        reg.close()


def test_retry_seconds_bounds_a_dead_server() -> None:
    with RedisServer() as server:
        port = server.port
    reg = ThreadRegistry.from_url(
        f"redis://127.0.0.1:{port}/0", namespace="x", retry_seconds=1.0, socket_connect_timeout=0.2
    )
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        reg.batch().get_or_create("a.b").execute()
    assert 0.9 < time.monotonic() - started < 4
    reg.close()


# ---------------------------------------------------------------- Redis Cluster


def _other_primary(group: RedisClusterGroup, namespace: str) -> Any:
    slot = group.keyslot(namespace_keys(namespace)[0])
    owner = group.primary_for_slot(slot)
    return slot, owner, next(p for p in group.primaries() if p is not owner)


def test_batch_order_through_a_slot_migration(redis_cluster: RedisClusterGroup, cluster_client: Any) -> None:
    """The set of scripts a transport believed loaded was one per registry: after the
    slot moved, a script another worker had loaded on the new owner ran at once while
    the others failed NOSCRIPT and were re-sent after it."""
    reg = ThreadRegistry(cluster_client, namespace="mig", ttl=600)
    t = reg.get_or_create("a.b")
    reg.batch().cleanup(reg.get_or_create("x.y")).lookup(t).get_or_create("c.d").execute()
    slot, _, target = _other_primary(redis_cluster, "mig")
    redis_cluster.migrate_slot(slot, target)
    other = ThreadRegistry(redis_cluster.client(), namespace="mig", ttl=600)
    assert other.lookup(t) == "a.b"  # loads `lookup` on the new owner
    assert reg.batch().cleanup(t).lookup(t).execute() == [None, None]
    c = reg.get_or_create("c.d")
    _, again = reg.batch().cleanup(c).get_or_create("c.d").execute()
    assert reg.lookup(again) == "c.d"


def test_a_namespace_is_served_through_its_slots_migration(
    redis_cluster: RedisClusterGroup, cluster_client: Any
) -> None:
    """Every script declares three keys; one of them absent on the node (the overrides
    hash of a namespace without outside ids) made the namespace wait (TRYAGAIN) for the
    whole migration. The keys now exist together, so the namespace is served while its
    slot is MIGRATING, and from the target (ASK) once its keys moved."""
    reg = ThreadRegistry(cluster_client, namespace="moving", ttl=600, retry_seconds=2)
    root = reg.initialize_root("acme")
    t = reg.extend_chain(root, "a")
    slot, source, target = _other_primary(redis_cluster, "moving")
    redis_cluster.begin_migration(slot, target)
    try:
        started = time.monotonic()
        assert reg.lookup(t) == "system.acme.a"  # MIGRATING, nothing moved yet
        assert reg.extend_chain(root, "b")
        assert reg.batch().lookup(t).extend_chain(t, "c").execute()[0] == "system.acme.a"
        redis_cluster.move_keys(slot, source, target)
        assert reg.lookup(t) == "system.acme.a"  # every key on the target: ASK
        assert reg.extend_chain(root, "d")
        assert reg.batch().lookup(t).extend_chain(t, "e").execute()[0] == "system.acme.a"
        assert time.monotonic() - started < 5
    finally:
        redis_cluster.finish_migration(slot, source, target)
        redis_cluster.wait_settled(20, what="the cluster after the migration")
    assert reg.lookup(t) == "system.acme.a"


@pytest.fixture
def partial_cluster() -> Iterator[RedisClusterGroup]:
    """A cluster that keeps serving the slots it still covers when a shard is lost."""
    group = RedisClusterGroup(extra_args=["--cluster-require-full-coverage", "no"])
    group.label = "function"
    group.start()
    try:
        yield group
    finally:
        group.stop()


def test_one_primary_down_does_not_stop_new_workers(partial_cluster: RedisClusterGroup) -> None:
    """NOSCRIPT recovery used SCRIPT LOAD through RedisCluster, which goes to every
    primary and fails while any is down: a new worker on a healthy shard got nothing."""
    _, owner, doomed = _other_primary(partial_cluster, "healthy")
    node = owner.cluster_node
    # (redis-py's asyncio cluster client cannot start while a node is down: made before)
    loop = asyncio.new_event_loop()
    aclient = redis.asyncio.cluster.RedisCluster(host=node.host, port=node.port)
    loop.run_until_complete(aclient.initialize())
    partial_cluster.kill(partial_cluster.replica_of(doomed))
    partial_cluster.kill(doomed)
    owner.client().script_flush()
    reg = ThreadRegistry(partial_cluster.client(), namespace="healthy", ttl=600, retry_seconds=3)
    started = time.monotonic()
    tid = reg.get_or_create("a.b")
    assert reg.lookup(tid) == "a.b"
    assert reg.batch().lookup(tid).cleanup(tid).execute() == ["a.b", None]
    assert time.monotonic() - started < 3

    async def async_worker() -> None:
        async with AsyncThreadRegistry(aclient, namespace="healthy", retry_seconds=3) as areg:
            owner.client().script_flush()
            t = await areg.get_or_create("c.d")
            assert await areg.lookup(t) == "c.d"

    try:
        loop.run_until_complete(async_worker())
    finally:
        loop.close()


def test_no_spurious_durability_error_after_a_cluster_failover(
    redis_cluster: RedisClusterGroup, cluster_client: Any
) -> None:
    """After CLUSTER FAILOVER the first round answers MOVED (nothing ran there); its WAIT,
    refused by what is now a replica, used to count as 0 acknowledgements."""
    reg = ThreadRegistry(cluster_client, namespace="fo", ttl=600, wait_replicas=1, wait_timeout_ms=2000)
    reg.get_or_create("before")
    _, owner, _ = _other_primary(redis_cluster, "fo")
    redis_cluster.failover(owner)
    tid = reg.get_or_create("after")  # raises DurabilityError if the MOVED round counted
    assert reg.lookup(tid) == "after"
    assert reg.batch().get_or_create("after.x").lookup(tid).execute()[1] == "after"


def _connections(group: RedisClusterGroup, name: str) -> int:
    total = 0
    for node in group.primaries():
        clients = node.client().client_list()
        total += sum(1 for c in clients if c.get("name") == name)
    return total


def test_async_cluster_connections_stay_within_limits_and_are_closed(
    redis_cluster: RedisClusterGroup, cluster_client: Any
) -> None:
    node = redis_cluster.primaries()[0].cluster_node

    async def scenario() -> int:
        client = redis.asyncio.cluster.RedisCluster(
            host=node.host, port=node.port, max_connections=2, client_name="leak-check"
        )
        reg = AsyncThreadRegistry(client, namespace="leaks", ttl=600)
        root = await reg.initialize_root("acme")

        async def one(i: int) -> None:
            await reg.batch().extend_chain(root, f"w{i}").lookup(root).execute()
            await reg.get_or_create(("system", "acme", f"w{i}"))

        await asyncio.gather(*(one(i) for i in range(50)))
        during = _connections(redis_cluster, "leak-check")
        await reg.aclose()
        return during

    during = asyncio.run(scenario())
    assert 0 < during <= 2 * len(redis_cluster.primaries())
    wait_for(lambda: _connections(redis_cluster, "leak-check") == 0, 5, "the connections to close")


# ---------------------------------------------------------------- Sentinel


def _sentinel_connections(group: SentinelGroup, name: str) -> int:
    total = 0
    for address in group.sentinels:
        c = redis.Redis(host=address[0], port=address[1])
        total += sum(1 for client in c.client_list() if client.get("name") == name)
        c.close()
    return total


def test_from_sentinel_closes_its_sentinel_connections(sentinel_group: SentinelGroup) -> None:
    kwargs = {"sentinel_kwargs": {"client_name": "sentinel-leak"}}
    reg = ThreadRegistry.from_sentinel(sentinel_group.sentinels, sentinel_group.service_name, **kwargs)
    reg.get_or_create("a.b")
    assert _sentinel_connections(sentinel_group, "sentinel-leak") > 0
    reg.close()
    wait_for(lambda: _sentinel_connections(sentinel_group, "sentinel-leak") == 0, 5, "sentinel connections")

    async def scenario() -> None:
        areg = AsyncThreadRegistry.from_sentinel(
            sentinel_group.sentinels, sentinel_group.service_name, **kwargs
        )
        await areg.get_or_create("a.b")
        assert _sentinel_connections(sentinel_group, "sentinel-leak") > 0
        await areg.aclose()

    asyncio.run(scenario())
    wait_for(lambda: _sentinel_connections(sentinel_group, "sentinel-leak") == 0, 5, "sentinel connections")


def test_no_spurious_durability_error_after_a_sentinel_failover(fresh_sentinel_group: SentinelGroup) -> None:
    """Pooled connections to the demoted primary: its READONLY used to reach the plan as
    a lost connection, and the WAIT of that round (refused by a replica) as 0
    acknowledgements, so every call on such a connection raised DurabilityError."""
    group = fresh_sentinel_group
    reg = ThreadRegistry.from_sentinel(
        group.sentinels, group.service_name, namespace="sfo", wait_replicas=2, wait_timeout_ms=3000
    )
    root = reg.initialize_root("acme")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # four pooled connections
        assert set(pool.map(lambda _: reg.initialize_root("acme"), range(8))) == {root}
    group.failover()
    for i in range(6):
        assert reg.initialize_root("acme") == root
        assert reg.extend_chain(root, f"after-{i}")
    assert reg.batch().initialize_root("acme").lookup(root).execute() == [root, "system.acme"]
    reg.close()
