"""The cluster and sentinel fixtures work: shape, failover, kill, resharding, cleanup.

These tests check the test infrastructure (tests/topology.py, tests/cluster_fixtures.py),
not the registry; a registry smoke check rides along where it costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.cluster
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from registry import ThreadRegistry
from tests.topology import (
    RedisClusterGroup,
    SentinelGroup,
    started_processes,
    topology_groups,
)


def _group_dirs_gone(group: RedisClusterGroup | SentinelGroup) -> bool:
    return group.workdir is None or not Path(group.workdir).exists()


@pytest.fixture(scope="module", autouse=True)
def _module_leaves_nothing() -> Iterator[None]:
    """Set up before (so torn down after) the module-scoped groups: once the module is
    done, every process a group started has exited and every group directory is gone."""
    yield
    running = [p.args[:3] for p in started_processes() if p.poll() is None]
    assert not running, f"still running after the module: {running}"
    assert all(_group_dirs_gone(g) for g in topology_groups())


@pytest.fixture(autouse=True)
def _test_leaves_nothing() -> Iterator[None]:
    """After each test (and its function-scoped groups' teardown): only module-scoped
    groups may still run; every process of a stopped group has exited (poll() is set),
    its directory is gone, and no started process belongs to no group."""
    yield
    owned: set[int] = set()
    for group in topology_groups():
        owned.update(id(p) for p in group.processes)
        if group.running:
            assert group.label == "module", f"a {group.label or 'bare'} group is still running"
        else:
            assert all(p.poll() is not None for p in group.processes), "a stopped group left a process"
            assert _group_dirs_gone(group)
    assert all(id(p) in owned or p.poll() is not None for p in started_processes())


# ----------------------------------------------------------------------------- cluster


def test_cluster_has_three_primaries_each_with_a_replica(redis_cluster: RedisClusterGroup) -> None:
    primaries = redis_cluster.primaries()
    assert len(primaries) == 3
    assert len(redis_cluster.nodes) == 6
    assert sorted(n.role for n in redis_cluster.nodes) == ["primary"] * 3 + ["replica"] * 3
    replicas = {redis_cluster.replica_of(p).port for p in primaries}
    assert len(replicas) == 3
    assert replicas.isdisjoint(p.port for p in primaries)
    for node in redis_cluster.nodes:
        info = node.client().execute_command("CLUSTER", "INFO")
        info = info if isinstance(info, dict) else dict(line.split(":", 1) for line in info.split())
        assert info["cluster_state"] == "ok"
    assert redis_cluster.url.startswith("redis://127.0.0.1:")
    assert {n.port for n in redis_cluster.startup_nodes} == {n.port for n in redis_cluster.nodes}


def test_thirty_namespaces_spread_over_all_primaries(
    redis_cluster: RedisClusterGroup, cluster_client: redis.cluster.RedisCluster
) -> None:
    keys = [f"threadreg:{{ns-{i}}}:meta" for i in range(30)]
    for key in keys:
        cluster_client.hset(key, "salt", "x")
    owners = {key: redis_cluster.primary_for_key(key) for key in keys}
    assert {o.port for o in owners.values()} == {p.port for p in redis_cluster.primaries()}
    for key, owner in owners.items():
        # the key really is on that primary's own keyspace, and the client agrees
        assert owner.client().execute_command("EXISTS", key) == 1
        assert cluster_client.get_node_from_key(key).port == owner.port
    # the three keys of one namespace share a slot
    slots = {redis_cluster.keyslot(f"threadreg:{{ns-7}}:{part}") for part in ("meta", "threads", "overrides")}
    assert len(slots) == 1


def test_failover_swaps_roles_and_back(
    redis_cluster: RedisClusterGroup, cluster_client: redis.cluster.RedisCluster
) -> None:
    reg = ThreadRegistry(cluster_client, namespace="failover-ns")
    root = reg.initialize_root("acme")
    key = "threadreg:{failover-ns}:meta"
    primary = redis_cluster.primary_for_key(key)
    replica = redis_cluster.replica_of(primary)

    new = redis_cluster.failover(primary)
    assert new is replica
    assert (new.role, primary.role) == ("primary", "replica")
    assert redis_cluster.primary_for_key(key) is new
    assert redis_cluster.replica_of(new) is primary
    # the client follows MOVED; the registry reloads its scripts on the new primary
    assert reg.lookup(root) == "system.acme"
    assert reg.extend_chain(root, "console")

    back = redis_cluster.failover(new, mode="force")
    assert back is primary
    assert (primary.role, new.role) == ("primary", "replica")
    assert reg.lookup(root) == "system.acme"


def test_kill_primary_promotes_its_replica(fresh_redis_cluster: RedisClusterGroup) -> None:
    group = fresh_redis_cluster
    rc = group.client()
    key = "threadreg:{kill-ns}:meta"
    rc.hset(key, "salt", "s1")
    primary = group.primary_for_key(key)
    replica = group.replica_of(primary)
    assert primary.client().execute_command("WAIT", 1, 2000) == 1  # replicated before the kill
    killed = primary.process
    assert killed is not None

    new = group.kill_primary(primary)
    assert new is replica and new.role == "primary"
    assert killed.poll() == -9  # SIGKILL
    assert primary.role == "down"
    assert group.primary_for_key(key) is new
    assert rc.hget(key, "salt") == b"s1"
    rc.hset(key, "salt", "s2")

    group.restart(primary)
    assert primary.role == "replica"
    assert group.replica_of(new) is primary
    group.wait_settled(5, require_replica_per_primary=True)
    assert len(group.processes) == 7  # six, plus the restarted one


def test_migrate_slot_moves_a_busy_namespace(
    redis_cluster: RedisClusterGroup, cluster_client: redis.cluster.RedisCluster
) -> None:
    reg = ThreadRegistry(cluster_client, namespace="moving")
    root = reg.initialize_root("acme")
    ids = [reg.extend_chain(root, f"worker-{i}") for i in range(20)]
    filler = [f"threadreg:{{moving}}:filler-{i}" for i in range(250)]  # > 2 MIGRATE batches
    for key in filler:
        cluster_client.set(key, key)
    slot = redis_cluster.keyslot("threadreg:{moving}:meta")
    source = redis_cluster.primary_for_slot(slot)
    target = next(p for p in redis_cluster.primaries() if p is not source)
    stale = redis_cluster.client()  # a client whose slot map predates the move
    assert stale.get(filler[0]) == filler[0].encode()

    batches: list[int] = []

    def write_between_batches(n: int) -> None:
        batches.append(n)
        # writes during the migration: new keys go to the target by ASK
        cluster_client.set(f"threadreg:{{moving}}:during-{len(batches)}", "x")

    moved = redis_cluster.migrate_slot(slot, target, batch=100, on_batch=write_between_batches)
    assert moved >= 250 + 2  # filler, meta, threads (overrides may not exist)
    assert len(batches) >= 3
    assert redis_cluster.primary_for_slot(slot) is target
    assert source.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    on_target = target.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
    assert on_target == moved + len(batches)
    for client in (stale, cluster_client, redis_cluster.client()):
        assert client.get(filler[-1]) == filler[-1].encode()
        assert client.get(f"threadreg:{{moving}}:during-{len(batches)}") == b"x"
    assert [reg.lookup(i) for i in ids] == [f"system.acme.worker-{i}" for i in range(20)]


# ----------------------------------------------------------------------------- sentinel


def test_sentinel_group_reports_its_primary(
    sentinel_group: SentinelGroup, sentinel_master: redis.Redis
) -> None:
    group = sentinel_group
    assert len(group.sentinels) == 3
    primary = group.primary_server()
    assert group.primary() == primary.address
    assert primary.role == "primary"
    assert sorted(s.port for s in group.replicas()) == sorted(
        s.port for s in group.servers if s is not primary
    )
    assert len(group.replicas()) == 2
    sentinel = group.sentinel()
    assert sentinel.discover_master(group.service_name) == primary.address
    assert len(sentinel.discover_slaves(group.service_name)) == 2
    sentinel_master.set("k", "v")
    assert primary.client().get("k") == "v"


def test_sentinel_failover_switches_primary(
    sentinel_group: SentinelGroup, sentinel_master: redis.Redis
) -> None:
    group = sentinel_group
    old = group.primary_server()
    sentinel_master.set("before", "1")
    assert old.client().execute_command("WAIT", 2, 2000) == 2

    new = group.failover()
    assert new is not old
    assert group.primary() == new.address
    assert (new.role, old.role) == ("primary", "replica")
    # a pooled connection to the demoted primary fails once (READONLY -> ConnectionError,
    # not retried: master_for clients have no retries by default); the next call reconnects
    with pytest.raises(redis.ConnectionError):
        sentinel_master.set("after", "2")
    sentinel_master.set("after", "2")
    assert new.client().get("after") == "2"
    assert new.client().get("before") == "1"


def test_sentinel_kill_primary_elects_a_writable_primary(fresh_sentinel_group: SentinelGroup) -> None:
    group = fresh_sentinel_group
    r = group.sentinel().master_for(group.service_name, retry=Retry(ExponentialBackoff(cap=0.5), 20))
    r.set("k", "v1")
    old = group.primary_server()
    assert old.client().execute_command("WAIT", 2, 2000) == 2
    killed = old.process
    assert killed is not None

    new = group.kill_primary()
    assert killed.poll() == -9
    assert new is not old and group.primary() == new.address
    assert group.primary() == group.sentinel().discover_master(group.service_name)
    # through the sentinels, writes reach the new primary
    r.set("k", "v2")
    assert new.client().get("k") == "v2"
    assert len(group.replicas()) == 1

    back = group.restart_old_primary()
    assert back is old and old.role == "replica"
    assert old.client().get("k") == "v2"
    assert len(group.replicas()) == 2
