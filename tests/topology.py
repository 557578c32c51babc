"""Throwaway Redis Cluster and Sentinel groups for tests (see tests/servers.py for one server)."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import redis
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers import REDIS_SERVER, free_port

# ---------------------------------------------------------------------------------------
# Topologies: Redis Cluster and Sentinel groups of throwaway processes.
#
# Every process below binds 127.0.0.1 on a free port, lives in a temporary directory of
# its group, and is recorded in `_STARTED` so a test (or the atexit hook) can prove that
# none outlives its group. Groups stop their processes with SIGKILL: the data is thrown
# away anyway, and SIGTERM would make a 7.x primary wait up to `shutdown-timeout` (10 s)
# for its replicas. Every wait polls about every 50 ms and is bounded; a timeout raises
# TopologyTimeout naming what it waited for and the last state it saw.
# ---------------------------------------------------------------------------------------

REDIS_CLI = os.environ.get("REDIS_CLI_BIN") or shutil.which("redis-cli") or "redis-cli"
POLL = 0.05
CLUSTER_SLOTS = 16384

T = TypeVar("T")

_STARTED: list[subprocess.Popen[bytes]] = []
_GROUPS: list[Any] = []  # every RedisClusterGroup / SentinelGroup made in this process


def started_processes() -> list[subprocess.Popen[bytes]]:
    """Every process the topology classes below ever started (running or not)."""
    return list(_STARTED)


def topology_groups() -> list[Any]:
    """Every RedisClusterGroup and SentinelGroup created so far (running or stopped)."""
    return list(_GROUPS)


@atexit.register
def _kill_leftovers() -> None:
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class TopologyTimeout(TimeoutError):
    """A bounded wait on a cluster or sentinel group ran out."""


class NotYet(Exception):
    """Raised by a wait_until check: not there yet, and why."""


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    diagnose: Callable[[], str] | None = None,
    interval: float = POLL,
) -> T:
    """Call `check` every `interval` s until it returns something other than None/False.

    `check` may raise NotYet(reason), or a connection error, to say "not yet"; the last
    reason goes into the TopologyTimeout raised after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    last = "no check finished"
    while True:
        try:
            value = check()
            if value is not None and value is not False:
                return value
            last = f"check returned {value!r}"
        except NotYet as exc:
            last = str(exc)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            extra = ""
            if diagnose is not None:
                try:
                    extra = "\n" + diagnose()
                except Exception as exc:  # diagnostics must not hide the timeout
                    extra = f"\n(diagnostics failed: {exc!r})"
            raise TopologyTimeout(f"timed out after {timeout:.1f}s waiting for {what}; last: {last}{extra}")
        time.sleep(interval)


def _parse_info(text: str | dict[str, Any]) -> dict[str, Any]:
    """INFO / CLUSTER INFO as a dict (redis-py already parses some replies into one)."""
    if isinstance(text, dict):
        return {str(k): v for k, v in text.items()}
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[k.strip()] = v.strip()
    return out


class ServerProcess:
    """One redis-server (or sentinel) process in a fixed directory, so it can be killed and
    started again with the same port and the same state files (nodes.conf, sentinel.conf)."""

    def __init__(self, name: str, workdir: Path, port: int | None = None) -> None:
        self.name = name
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.history: list[subprocess.Popen[bytes]] = []
        self._client: redis.Redis | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)

    # subclasses say how to run themselves
    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def logfile(self) -> Path:
        return self.workdir / "redis.log"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0, *, new_port_on_conflict: bool = False) -> None:
        """Start and wait for PING. With new_port_on_conflict, a port taken meanwhile by
        someone else is replaced by another free one (only before the port is published)."""
        for _attempt in range(3):
            self._spawn()
            try:
                wait_until(
                    self._ping_or_died,
                    timeout=timeout,
                    what=f"{self.name} to answer PING",
                    diagnose=self.log_tail,
                )
                return
            except _Died:
                log = self.log_tail()
                self.kill()
                if new_port_on_conflict and "Address already in use" in log:
                    self.port = free_port()
                    continue
                raise RuntimeError(f"{self.name} exited at start:\n{log}") from None
        raise RuntimeError(f"{self.name}: no free port after 3 attempts")

    def _spawn(self) -> None:
        self._client = None
        proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )
        _STARTED.append(proc)
        self.history.append(proc)
        self.process = proc

    def _ping_or_died(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise _Died
        return bool(self.client().ping())

    def client(self) -> redis.Redis:
        """A str-decoding client for this process, with no retries (waits poll instead)."""
        if self._client is None:
            self._client = redis.Redis(
                host="127.0.0.1",
                port=self.port,
                decode_responses=True,
                socket_connect_timeout=1.0,
                socket_timeout=5.0,
                retry=Retry(NoBackoff(), 0),
            )
        return self._client

    def info(self, section: str) -> dict[str, Any]:
        return _parse_info(self.client().execute_command("INFO", section))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (SIGKILL by default) and reap the process."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(sig)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return f"--- {self.name} log tail:\n" + self.logfile.read_text(errors="replace")[-chars:]
        except OSError:
            return f"--- {self.name}: no log"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name} 127.0.0.1:{self.port} {state}>"


class _Died(Exception):
    pass


_COMMON_ARGS = [
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no",
    # start a replica's full sync at once instead of waiting 5 s for more replicas
    "--repl-diskless-sync",
    "yes",
    "--repl-diskless-sync-delay",
    "0",
]


def _remove_dir(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- cluster


class ClusterNodeServer(ServerProcess):
    """One cluster node. `role` is asked live: "primary", "replica" or "down"."""

    def __init__(self, name: str, workdir: Path, extra_args: list[str]) -> None:
        super().__init__(name, workdir)
        self.bus_port = free_port()
        self.extra_args = extra_args
        self.node_id = ""

    def command(self) -> list[str]:
        return [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--cluster-port",
            str(self.bus_port),
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.logfile),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.workdir / "nodes.conf"),
            *_COMMON_ARGS,
            *self.extra_args,
        ]

    def start(self, timeout: float = 10.0, *, new_port_on_conflict: bool = False) -> None:
        for _attempt in range(3):
            try:
                super().start(timeout, new_port_on_conflict=new_port_on_conflict)
                break
            except RuntimeError as exc:
                # the bus port may be the one taken; a fresh node may pick both again
                if not (new_port_on_conflict and "Address already in use" in str(exc)):
                    raise
                self.bus_port = free_port()
        self.node_id = str(self.client().execute_command("CLUSTER", "MYID"))

    @property
    def role(self) -> str:
        if not self.running:
            return "down"
        role = self.info("replication").get("role")
        return "primary" if role == "master" else "replica"

    @property
    def cluster_node(self) -> redis.cluster.ClusterNode:
        return redis.cluster.ClusterNode("127.0.0.1", self.port)

    def __repr__(self) -> str:
        state = "running" if self.running else "down"
        return f"<ClusterNodeServer {self.name} 127.0.0.1:{self.port} id={self.node_id[:8]} {state}>"


@dataclass(frozen=True)
class _NodeView:
    """One line of CLUSTER NODES."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]
    link: str

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags


def _parse_cluster_nodes(text: str) -> dict[str, _NodeView]:
    views: dict[str, _NodeView] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        addr = parts[1].split("@", 1)[0]
        port = int(addr.rsplit(":", 1)[1]) if ":" in addr and addr.rsplit(":", 1)[1] else 0
        slots: list[tuple[int, int]] = []
        for item in parts[8:]:
            if item.startswith("["):  # [slot->-id] migrating / [slot-<-id] importing
                continue
            lo, _, hi = item.partition("-")
            slots.append((int(lo), int(hi or lo)))
        views[parts[0]] = _NodeView(
            node_id=parts[0],
            port=port,
            flags=frozenset(parts[2].split(",")),
            master_id=None if parts[3] == "-" else parts[3],
            slots=tuple(sorted(slots)),
            link=parts[7],
        )
    return views


_BAD_FLAGS = frozenset({"fail", "fail?", "handshake", "noaddr"})


class TopologyGroup:
    """A group of server processes started and stopped together; a context manager."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class RedisClusterGroup(TopologyGroup):
    """A throwaway Redis Cluster: `primaries` primaries with `replicas_per_primary` replicas
    each, built with `redis-cli --cluster create`, on free loopback ports.

    >>> group = RedisClusterGroup().start()
    >>> rc = group.client()                  # redis.cluster.RedisCluster
    >>> p = group.primary_for_slot(rc.keyslot("threadreg:{acme}:meta"))
    >>> group.failover(p)                    # CLUSTER FAILOVER on its replica; roles swap
    >>> group.kill_primary(p); group.restart(p)
    >>> group.migrate_slot(slot, other_primary)
    >>> group.stop()
    """

    def __init__(
        self,
        primaries: int = 3,
        replicas_per_primary: int = 1,
        *,
        node_timeout_ms: int = 1000,
        extra_args: Iterable[str] = (),
        settle_timeout: float = 30.0,
    ) -> None:
        if primaries < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 primaries")
        self.primaries_wanted = primaries
        self.replicas_per_primary = replicas_per_primary
        self.node_timeout_ms = node_timeout_ms
        self.settle_timeout = settle_timeout
        self.extra_args = [
            "--cluster-node-timeout",
            str(node_timeout_ms),
            # a replica may take over however long its link was down (tests kill things)
            "--cluster-replica-validity-factor",
            "0",
            "--cluster-allow-reads-when-down",
            "no",
            "--cluster-require-full-coverage",
            "yes",
            *extra_args,
        ]
        self.workdir: Path | None = None
        self.nodes: list[ClusterNodeServer] = []
        self._clients: list[redis.cluster.RedisCluster] = []
        self.running = False
        self.label = ""  # set by fixtures ("module" / "function"), for leak checks
        _GROUPS.append(self)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> RedisClusterGroup:
        """Start every node, create the cluster, wait until it is settled (all nodes agree,
        cluster_state:ok everywhere, every replica synced). Stops everything on failure."""
        self.workdir = Path(tempfile.mkdtemp(prefix="threadreg-cluster-"))
        self.running = True
        try:
            total = self.primaries_wanted * (1 + self.replicas_per_primary)
            for i in range(total):
                node = ClusterNodeServer(f"node{i}", self.workdir / f"node{i}", self.extra_args)
                self.nodes.append(node)
                node.start(new_port_on_conflict=True)
            cmd = [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                str(self.replicas_per_primary),
                "--cluster-yes",
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")
            self.wait_settled(timeout=self.settle_timeout, what="the new cluster")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill (SIGKILL) every process this group started and remove its directory."""
        for c in self._clients:
            with contextlib.suppress(Exception):
                c.close()
        self._clients.clear()
        for node in self.nodes:
            node.kill()
        _remove_dir(self.workdir)
        self.running = False

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """Every process this group ever started, killed ones included."""
        return [p for n in self.nodes for p in n.history]

    # ------------------------------------------------------------------ clients

    @property
    def live_nodes(self) -> list[ClusterNodeServer]:
        return [n for n in self.nodes if n.running]

    @property
    def startup_nodes(self) -> list[redis.cluster.ClusterNode]:
        return [n.cluster_node for n in self.live_nodes]

    @property
    def url(self) -> str:
        """redis://127.0.0.1:<port> of a live primary (RedisCluster.from_url discovers the rest)."""
        return f"redis://127.0.0.1:{self.primaries()[0].port}"

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A redis.cluster.RedisCluster on the live nodes; closed by stop()."""
        rc = redis.cluster.RedisCluster(startup_nodes=self.startup_nodes, **kwargs)
        self._clients.append(rc)
        return rc

    def node_by_id(self, node_id: str) -> ClusterNodeServer:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(node_id)

    def node_by_port(self, port: int) -> ClusterNodeServer:
        for n in self.nodes:
            if n.port == port:
                return n
        raise KeyError(port)

    # ------------------------------------------------------------------ topology

    def view(self, node: ClusterNodeServer | None = None) -> dict[str, _NodeView]:
        """CLUSTER NODES as `node` (default: the first live node) sees it."""
        node = node or self.live_nodes[0]
        return _parse_cluster_nodes(node.client().execute_command("CLUSTER", "NODES"))

    def primaries(self) -> list[ClusterNodeServer]:
        """Live primaries that own slots, in slot order."""
        views = [v for v in self.view().values() if v.is_primary and v.slots]
        views.sort(key=lambda v: v.slots[0])
        return [self.node_by_id(v.node_id) for v in views if self.node_by_id(v.node_id).running]

    def replicas(self) -> list[ClusterNodeServer]:
        return [n for n in self.live_nodes if n not in self.primaries()]

    @staticmethod
    def keyslot(key: str | bytes) -> int:
        from redis.crc import key_slot

        return int(key_slot(key.encode() if isinstance(key, str) else key))

    def primary_for_slot(self, slot: int) -> ClusterNodeServer:
        for v in self.view().values():
            if v.is_primary and any(lo <= slot <= hi for lo, hi in v.slots):
                return self.node_by_id(v.node_id)
        raise LookupError(f"no node owns slot {slot}")

    def primary_for_key(self, key: str | bytes) -> ClusterNodeServer:
        return self.primary_for_slot(self.keyslot(key))

    def replica_of(self, primary: ClusterNodeServer) -> ClusterNodeServer:
        """A live replica of `primary` (as the primary itself sees its replicas)."""
        for v in self.view(primary if primary.running else None).values():
            if v.master_id == primary.node_id and "slave" in v.flags:
                node = self.node_by_id(v.node_id)
                if node.running:
                    return node
        raise LookupError(f"{primary!r} has no live replica")

    # ------------------------------------------------------------------ waiting

    def _check_settled(self, require_replica_per_primary: bool) -> bool:
        live = self.live_nodes
        live_ids = {n.node_id for n in live}
        reference: dict[str, tuple[Any, ...]] | None = None
        for node in live:
            info = _parse_info(node.client().execute_command("CLUSTER", "INFO"))
            if info.get("cluster_state") != "ok":
                raise NotYet(f"{node.name}: cluster_state={info.get('cluster_state')}")
            if int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
                raise NotYet(
                    f"{node.name}: knows {info.get('cluster_known_nodes')} nodes of {len(self.nodes)}"
                )
            views = _parse_cluster_nodes(node.client().execute_command("CLUSTER", "NODES"))
            summary: dict[str, tuple[Any, ...]] = {}
            for nid, v in views.items():
                if nid in live_ids:
                    if v.flags & _BAD_FLAGS:
                        raise NotYet(f"{node.name} sees {nid[:8]} as {sorted(v.flags)}")
                    summary[nid] = (v.is_primary, v.master_id, v.slots)
                elif v.slots:
                    raise NotYet(f"{node.name} still gives slots to dead node {nid[:8]}")
            if reference is None:
                reference = summary
            elif summary != reference:
                raise NotYet(f"{node.name} disagrees with {live[0].name} about the topology")
        assert reference is not None
        owned = sum(hi - lo + 1 for (_p, _m, slots) in reference.values() for lo, hi in slots)
        if owned != CLUSTER_SLOTS:
            raise NotYet(f"live primaries own {owned} slots")
        for nid, (is_primary, master_id, _slots) in reference.items():
            node = self.node_by_id(nid)
            repl = node.info("replication")
            if is_primary:
                if repl.get("role") != "master":
                    raise NotYet(f"{node.name} is a primary in the view but says role={repl.get('role')}")
            else:
                if repl.get("role") != "slave" or repl.get("master_link_status") != "up":
                    raise NotYet(f"{node.name}: replica link {repl.get('master_link_status')}")
                if master_id is None or int(repl.get("master_port", 0)) != self.node_by_id(master_id).port:
                    raise NotYet(f"{node.name} replicates port {repl.get('master_port')}")
        if require_replica_per_primary:
            for nid, (is_primary, _m, slots) in reference.items():
                if is_primary and slots and not any(m == nid for (_p, m, _s) in reference.values()):
                    raise NotYet(f"primary {self.node_by_id(nid).name} has no live replica")
        return True

    def wait_settled(
        self,
        timeout: float | None = None,
        *,
        what: str = "the cluster",
        require_replica_per_primary: bool = False,
    ) -> None:
        """Wait until every live node says cluster_state:ok, knows every node, agrees with
        the others on roles and slots, no live node is flagged failing, dead nodes own no
        slots, and every live replica's link to its primary is up."""
        wait_until(
            lambda: self._check_settled(require_replica_per_primary),
            timeout=timeout or self.settle_timeout,
            what=f"{what} to settle",
            diagnose=self._diagnose,
        )

    def _diagnose(self) -> str:
        lines = []
        for node in self.nodes:
            lines.append(repr(node))
            if node.running:
                try:
                    lines.append(node.client().execute_command("CLUSTER", "NODES"))
                except Exception as exc:
                    lines.append(f"  CLUSTER NODES failed: {exc!r}")
            lines.append(node.log_tail(600))
        return "\n".join(lines)

    def _wait_role(self, node: ClusterNodeServer, role: str, timeout: float) -> None:
        wait_until(
            lambda: node.role == role,
            timeout=timeout,
            what=f"{node.name} to become {role}",
            diagnose=self._diagnose,
        )

    # ------------------------------------------------------------------ faults

    def failover(
        self, primary: ClusterNodeServer, mode: str = "manual", timeout: float = 20.0
    ) -> ClusterNodeServer:
        """Run CLUSTER FAILOVER [FORCE|TAKEOVER] on a replica of `primary`; wait until the
        roles have swapped and the cluster settled. mode: "manual", "force", "takeover".
        Returns the new primary (the old one is now its replica)."""
        replica = self.replica_of(primary)
        args = {"manual": (), "force": ("FORCE",), "takeover": ("TAKEOVER",)}[mode]
        replica.client().execute_command("CLUSTER", "FAILOVER", *args)
        self._wait_role(replica, "primary", timeout)
        self._wait_role(primary, "replica", timeout)
        self.wait_settled(timeout, what=f"the cluster after failover of {primary.name}")
        return replica

    def kill_primary(self, primary: ClusterNodeServer, timeout: float = 20.0) -> ClusterNodeServer:
        """SIGKILL `primary`; wait until its replica was promoted and the cluster settled
        (cluster_state:ok everywhere, the new primary owns the slots). Returns the new primary."""
        replica = self.replica_of(primary)
        primary.kill()
        self._wait_role(replica, "primary", timeout)
        self.wait_settled(timeout, what=f"the cluster after killing {primary.name}")
        return replica

    def kill(self, node: ClusterNodeServer) -> None:
        """SIGKILL any node without waiting for anything."""
        node.kill()

    def restart(self, node: ClusterNodeServer, timeout: float = 20.0) -> None:
        """Start a killed node again (same port, same nodes.conf). A former primary whose
        slots were taken over comes back as a replica of the new owner. Waits until settled."""
        if node.running:
            raise RuntimeError(f"{node!r} is running")
        node.start()
        self.wait_settled(timeout, what=f"the cluster after restarting {node.name}")

    # ------------------------------------------------------------------ resharding

    def begin_migration(self, slot: int, target: ClusterNodeServer) -> ClusterNodeServer:
        """SETSLOT IMPORTING on the target, then MIGRATING on the owner; returns the owner."""
        source = self.primary_for_slot(slot)
        if source is target:
            raise ValueError(f"{target.name} already owns slot {slot}")
        target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        return source

    def move_keys(
        self,
        slot: int,
        source: ClusterNodeServer,
        target: ClusterNodeServer,
        *,
        batch: int = 100,
        replace: bool = False,
        on_batch: Callable[[int], None] | None = None,
        timeout_ms: int = 10000,
    ) -> int:
        """MIGRATE every key of `slot` from source to target, `batch` keys per MIGRATE
        (CLUSTER GETKEYSINSLOT until empty). Keys written meanwhile land on the target via
        ASK, so the loop ends. `on_batch(n)` runs after each MIGRATE. Returns keys moved."""
        moved = 0
        src = source.client()
        while True:
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                return moved
            extra = ["REPLACE"] if replace else []
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, timeout_ms, *extra, "KEYS", *keys)
            moved += len(keys)
            if on_batch is not None:
                on_batch(len(keys))

    def finish_migration(self, slot: int, source: ClusterNodeServer, target: ClusterNodeServer) -> None:
        """SETSLOT NODE on the target, then the source, then every other primary."""
        order = [target, source] + [p for p in self.primaries() if p not in (target, source)]
        for node in order:
            node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)

    def migrate_slot(
        self,
        slot: int,
        target_primary: ClusterNodeServer,
        *,
        batch: int = 100,
        on_batch: Callable[[int], None] | None = None,
        timeout: float = 20.0,
    ) -> int:
        """Live-migrate `slot` to `target_primary` (IMPORTING/MIGRATING, MIGRATE ... KEYS in
        batches, SETSLOT NODE on all primaries), then wait until every node agrees.
        Returns the number of keys moved."""
        source = self.begin_migration(slot, target_primary)
        moved = self.move_keys(slot, source, target_primary, batch=batch, on_batch=on_batch)
        self.finish_migration(slot, source, target_primary)

        def agreed() -> bool:
            for node in self.live_nodes:
                views = _parse_cluster_nodes(node.client().execute_command("CLUSTER", "NODES"))
                owner = [
                    v for v in views.values() if v.is_primary and any(lo <= slot <= hi for lo, hi in v.slots)
                ]
                if [v.node_id for v in owner] != [target_primary.node_id]:
                    raise NotYet(f"{node.name} gives slot {slot} to {[v.node_id[:8] for v in owner]}")
            return True

        wait_until(
            agreed, timeout=timeout, what=f"every node to agree on slot {slot}", diagnose=self._diagnose
        )
        self.wait_settled(timeout, what=f"the cluster after migrating slot {slot}")
        return moved

    def flushall(self) -> None:
        """FLUSHALL and SCRIPT FLUSH on every live primary (replicas follow the data)."""
        for node in self.primaries():
            node.client().execute_command("FLUSHALL")
            node.client().execute_command("SCRIPT", "FLUSH")


# ----------------------------------------------------------------------------- sentinel


class DataServer(ServerProcess):
    """A standalone primary or replica of a SentinelGroup."""

    def __init__(self, name: str, workdir: Path, replicaof: tuple[str, int] | None = None) -> None:
        super().__init__(name, workdir)
        self.replicaof = replicaof

    def command(self) -> list[str]:
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.logfile),
            *_COMMON_ARGS,
        ]
        if self.replicaof is not None:
            args += ["--replicaof", self.replicaof[0], str(self.replicaof[1])]
        return args

    @property
    def role(self) -> str:
        if not self.running:
            return "down"
        return "primary" if self.info("replication").get("role") == "master" else "replica"


class SentinelServer(ServerProcess):
    """One sentinel: redis-server <conf> --sentinel (the conf must be writable)."""

    def __init__(self, name: str, workdir: Path, conf: str) -> None:
        super().__init__(name, workdir)
        self.conf_text = conf

    def command(self) -> list[str]:
        conf = self.workdir / "sentinel.conf"
        if not conf.exists():  # a restarted sentinel keeps what it rewrote
            conf.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndaemonize no\ndir {self.workdir}\n"
                f"logfile {self.logfile}\n{self.conf_text}"
            )
        return [REDIS_SERVER, str(conf), "--sentinel"]


class SentinelGroup(TopologyGroup):
    """One primary, `replicas` replicas and `sentinels` sentinels monitoring it as
    `service_name` (quorum: majority), all on free loopback ports.

    >>> group = SentinelGroup().start()
    >>> group.primary()                       # ("127.0.0.1", port) as the sentinels say
    >>> r = group.sentinel().master_for("mymaster")
    >>> group.kill_primary()                  # SIGKILL; waits for a new primary with a replica
    >>> group.restart_old_primary()           # back as a replica of the new primary
    >>> group.failover()                      # SENTINEL FAILOVER
    >>> group.stop()
    """

    def __init__(
        self,
        replicas: int = 2,
        sentinels: int = 3,
        service_name: str = "mymaster",
        *,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        settle_timeout: float = 30.0,
    ) -> None:
        self.replicas_wanted = replicas
        self.sentinels_wanted = sentinels
        self.service_name = service_name
        self.quorum = sentinels // 2 + 1
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.settle_timeout = settle_timeout
        self.workdir: Path | None = None
        self.servers: list[DataServer] = []
        self.sentinel_servers: list[SentinelServer] = []
        self.old_primary: DataServer | None = None
        self._clients: list[redis.sentinel.Sentinel] = []
        self.running = False
        self.label = ""  # set by fixtures ("module" / "function"), for leak checks
        _GROUPS.append(self)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SentinelGroup:
        """Start the primary, its replicas (waiting for their sync), then the sentinels;
        wait until every sentinel names the primary, sees every replica and the other
        sentinels, and SENTINEL CKQUORUM passes. Stops everything on failure."""
        self.workdir = Path(tempfile.mkdtemp(prefix="threadreg-sentinel-"))
        self.running = True
        try:
            primary = DataServer("primary", self.workdir / "primary")
            self.servers.append(primary)
            primary.start(new_port_on_conflict=True)
            for i in range(self.replicas_wanted):
                replica = DataServer(f"replica{i}", self.workdir / f"replica{i}", replicaof=primary.address)
                self.servers.append(replica)
                replica.start(new_port_on_conflict=True)
            self._wait_replicas_synced(primary, self.replicas_wanted, self.settle_timeout)
            conf = (
                f"sentinel monitor {self.service_name} 127.0.0.1 {primary.port} {self.quorum}\n"
                f"sentinel down-after-milliseconds {self.service_name} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.service_name} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.service_name} 1\n"
            )
            for i in range(self.sentinels_wanted):
                s = SentinelServer(f"sentinel{i}", self.workdir / f"sentinel{i}", conf)
                self.sentinel_servers.append(s)
                s.start(new_port_on_conflict=True)
            self.wait_settled(primary, what="the new sentinel group")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill (SIGKILL) every process this group started and remove its directory."""
        for c in self._clients:
            for s in c.sentinels:
                with contextlib.suppress(Exception):
                    s.close()
        self._clients.clear()
        for proc in [*self.sentinel_servers, *self.servers]:
            proc.kill()
        _remove_dir(self.workdir)
        self.running = False

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [p for s in [*self.servers, *self.sentinel_servers] for p in s.history]

    # ------------------------------------------------------------------ clients

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [s.address for s in self.sentinel_servers if s.running]

    def sentinel(self, **kwargs: Any) -> redis.sentinel.Sentinel:
        """A redis.sentinel.Sentinel on the live sentinels (kwargs go to data connections);
        its connections to sentinels are closed by stop()."""
        kwargs.setdefault("socket_timeout", 2.0)
        s = redis.sentinel.Sentinel(self.sentinels, sentinel_kwargs={"socket_timeout": 1.0}, **kwargs)
        self._clients.append(s)
        return s

    def master_for(self, **kwargs: Any) -> redis.Redis:
        return self.sentinel(**kwargs).master_for(self.service_name)

    def server_at(self, address: tuple[str, int]) -> DataServer:
        for s in self.servers:
            if s.port == int(address[1]):
                return s
        raise KeyError(address)

    def primary(self) -> tuple[str, int]:
        """The primary's address as the (first live) sentinel reports it."""
        addr = (
            self.sentinel_servers_live()[0]
            .client()
            .execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
        )
        return (str(addr[0]), int(addr[1]))

    def primary_server(self) -> DataServer:
        return self.server_at(self.primary())

    def sentinel_servers_live(self) -> list[SentinelServer]:
        return [s for s in self.sentinel_servers if s.running]

    def replicas(self) -> list[DataServer]:
        return [s for s in self.servers if s.running and s.role == "replica"]

    # ------------------------------------------------------------------ waiting

    def _wait_replicas_synced(self, primary: DataServer, count: int, timeout: float) -> None:
        def synced() -> bool:
            info = primary.info("replication")
            if info.get("role") != "master":
                raise NotYet(f"{primary.name} role={info.get('role')}")
            online = _online_replicas(info)
            if len(online) < count:
                raise NotYet(f"{primary.name} has {len(online)} online replicas of {count}")
            return True

        wait_until(
            synced,
            timeout=timeout,
            what=f"{count} replicas synced to {primary.name}",
            diagnose=self._diagnose,
        )

    def _check_sentinels(self, primary: DataServer, replicas: list[DataServer]) -> bool:
        want_replicas = {r.port for r in replicas}
        live = self.sentinel_servers_live()
        for s in live:
            c = s.client()
            addr = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
            if addr is None or int(addr[1]) != primary.port:
                raise NotYet(f"{s.name} names primary {addr}")
            master = _pairs(c.execute_command("SENTINEL", "MASTER", self.service_name))
            if master.get("flags") != "master":
                raise NotYet(f"{s.name}: primary flags {master.get('flags')}")
            seen = {
                int(r["port"])
                for r in map(_pairs, c.execute_command("SENTINEL", "REPLICAS", self.service_name))
                # flags only: a sentinel refreshes a replica's INFO (link status, master
                # port) every 10 s, so those fields lag; the data servers were checked above
                if r.get("flags") == "slave"
            }
            if not want_replicas <= seen:
                raise NotYet(f"{s.name} sees healthy replicas {sorted(seen)}, wants {sorted(want_replicas)}")
            others = c.execute_command("SENTINEL", "SENTINELS", self.service_name)
            if len(others) < len(live) - 1:
                raise NotYet(f"{s.name} knows {len(others)} other sentinels")
            c.execute_command("SENTINEL", "CKQUORUM", self.service_name)  # raises if not OK
        return True

    def wait_settled(
        self,
        primary: DataServer | None = None,
        *,
        timeout: float | None = None,
        what: str = "the sentinel group",
    ) -> None:
        """Wait until `primary` (default: the one the sentinels name, read again on each
        try, since a sentinel election can change its mind) says role:master with every
        other running server as an online replica, and every live sentinel names it,
        sees those replicas healthy, knows the other sentinels and passes CKQUORUM."""
        timeout = timeout or self.settle_timeout

        def settled() -> bool:
            p = primary or self.primary_server()
            if not p.running:
                raise NotYet(f"the sentinels name {p.name}, which is not running")
            replicas = [s for s in self.servers if s.running and s is not p]
            info = p.info("replication")
            if info.get("role") != "master":
                raise NotYet(f"{p.name} role={info.get('role')}")
            online = _online_replicas(info)
            if len(online) < len(replicas):
                raise NotYet(f"{p.name} has {len(online)} online replicas of {len(replicas)}")
            return self._check_sentinels(p, replicas)

        wait_until(settled, timeout=timeout, what=f"{what} to settle", diagnose=self._diagnose)

    def _diagnose(self) -> str:
        lines = []
        for s in self.servers:
            lines.append(repr(s))
            if s.running:
                try:
                    rep = s.info("replication")
                    lines.append(f"  role={rep.get('role')} link={rep.get('master_link_status')}")
                except Exception as exc:
                    lines.append(f"  INFO failed: {exc!r}")
        for sn in self.sentinel_servers:
            lines.append(repr(sn))
            lines.append(sn.log_tail(800))
        return "\n".join(lines)

    def _wait_new_primary(self, old: DataServer, timeout: float) -> DataServer:
        def switched() -> DataServer:
            live = self.sentinel_servers_live()
            ports = set()
            for s in live:
                addr = s.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
                ports.add(int(addr[1]))
            if len(ports) != 1 or old.port in ports:
                raise NotYet(f"sentinels name primaries on ports {sorted(ports)}")
            new = self.server_at(("127.0.0.1", ports.pop()))
            info = new.info("replication")
            if info.get("role") != "master":
                raise NotYet(f"{new.name} named primary but says role={info.get('role')}")
            online = _online_replicas(info)
            if not online:
                raise NotYet(f"{new.name} has no online replica yet")
            return new

        return wait_until(
            switched, timeout=timeout, what=f"sentinels to replace {old.name}", diagnose=self._diagnose
        )

    # ------------------------------------------------------------------ faults

    def kill_primary(self, timeout: float = 30.0) -> DataServer:
        """SIGKILL the primary; wait until every sentinel names a new primary, which says
        role:master and has an online replica. Returns it; the killed one is `old_primary`."""
        old = self.primary_server()
        old.kill()
        self.old_primary = old
        self._wait_new_primary(old, timeout)
        # Settle on whichever primary the sentinels end with: under load an election
        # may run again and choose another replica than the one they named first.
        self.wait_settled(timeout=timeout, what=f"the group after killing {old.name}")
        new = self.primary_server()
        assert new is not old
        assert len([s for s in self.servers if s.running and s is not new]) == self.replicas_wanted - 1
        return new

    def restart_old_primary(self, timeout: float = 30.0) -> DataServer:
        """Start the primary killed by kill_primary() again, as a replica of the current
        primary (started with --replicaof, so no window with two primaries); wait until
        it is synced and every sentinel sees it as a healthy replica."""
        old = self.old_primary
        if old is None:
            raise RuntimeError("no killed primary to restart")
        primary = self.primary_server()
        old.replicaof = primary.address
        old.start()
        self.old_primary = None
        self.wait_settled(primary, timeout=timeout, what=f"the group after restarting {old.name}")
        return old

    def failover(self, timeout: float = 30.0, *, demote_old_primary: bool = True) -> DataServer:
        """SENTINEL FAILOVER <service>; wait until every sentinel names the new primary and
        it has an online replica, then until the old primary is a replica of it, and the
        group settled. Returns the new primary.

        A sentinel turns the old (still running) primary into a replica only about 10 s
        after the switch (it waits 4 publish periods for newer configs, then for the next
        INFO); until then the old primary still answers as a primary. With
        demote_old_primary (default) this harness sends it REPLICAOF <new> at once, as
        the sentinel would later; pass False to observe the sentinel's own timing."""
        old = self.primary_server()
        self.sentinel_servers_live()[0].client().execute_command("SENTINEL", "FAILOVER", self.service_name)
        new = self._wait_new_primary(old, timeout)
        if demote_old_primary and old.role == "primary":
            old.client().execute_command("REPLICAOF", new.address[0], new.port)
        wait_until(
            lambda: old.role == "replica",
            timeout=timeout,
            what=f"{old.name} to become a replica",
            diagnose=self._diagnose,
        )
        self.wait_settled(new, timeout=timeout, what="the group after SENTINEL FAILOVER")
        return new


def _online_replicas(info: dict[str, Any]) -> list[Any]:
    """The slaveN entries of INFO replication whose state is online."""
    out = []
    for k, v in info.items():
        if k.startswith("slave") and k[5:].isdigit():
            state = v.get("state") if isinstance(v, dict) else ("online" if "state=online" in str(v) else "")
            if state == "online":
                out.append(v)
    return out


def _pairs(flat: Any) -> dict[str, str]:
    """A flat [k1, v1, k2, v2, ...] reply (or a dict under RESP3) as a dict."""
    if isinstance(flat, dict):
        return {str(k): str(v) for k, v in flat.items()}
    items = list(flat)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}
