"""What every process of the pipeline agrees on: settings, stream keys, messages, connections.

A stream entry holds two fields: ``t``, the thread id, and ``p``, the payload (JSON).
The baseline (``routing="chain"``, for the benchmark) adds ``c``, the whole chain, and
sends no thread id: that is the bus without a registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis
import redis.cluster

from ..client import ThreadRegistry

CONSOLE = "console"
ROUTER = "router"
ADD = "calculator.add"  # a dotted name: one hop, never split
ECHO = "echo"  # answers at once, with the path the registry holds for its thread
PLANNER = "planner"  # asks calculator.add before it answers: 4 hops below the root
SERVICES = (ADD, ECHO, PLANNER)
LISTENERS = (CONSOLE, ROUTER, *SERVICES)
WORKER_LISTENERS = (ROUTER, *SERVICES)  # every worker process serves all of them
ORGANISM = "pipeline"
GROUP = "workers"  # the consumer group on each listener's stream
CLIENT_NAME_PREFIX = "pipeline-worker-"  # CLIENT SETNAME of every worker connection
CONSOLE_CLIENT_NAME = "pipeline-console"


@dataclass(frozen=True)
class Settings:
    """One run's configuration, handed to each worker process (picklable)."""

    namespace: str
    url: str | None = None
    cluster: bool = False
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    wait_replicas: int = 0
    ttl: float | None = 3600.0
    routing: str = "registry"  # or "chain": the baseline without a registry
    read_count: int = 50  # entries per stream per XREADGROUP
    claim_idle_ms: int = 2000  # XAUTOCLAIM takes entries idle this long
    claim_every_s: float = 0.5


def stream_key(namespace: str, listener: str) -> str:
    """A listener's stream. The hash tag is the namespace's, as for the registry's keys,
    so one XREADGROUP may read every listener's stream on a Redis Cluster."""
    return f"pipeline:{{{namespace}}}:{listener}"


def stats_key(namespace: str) -> str:
    """A hash the workers count into (HINCRBY): it survives their kill -9."""
    return f"pipeline:{{{namespace}}}:stats"


def encode(thread_id: str | None, payload: dict[str, Any], chain: list[str] | None = None) -> dict[str, str]:
    fields = {"t": thread_id or "", "p": json.dumps(payload, separators=(",", ":"))}
    if chain is not None:
        fields["c"] = json.dumps(chain, separators=(",", ":"))
    return fields


@dataclass(frozen=True)
class Message:
    """One stream entry as read: where it came from, and what it carries."""

    listener: str
    entry_id: str
    thread_id: str
    payload: dict[str, Any]
    chain: list[str] | None = None  # the baseline only


def decode(listener: str, entry_id: Any, fields: dict[Any, Any]) -> Message:
    def get(name: str) -> str | None:
        value = fields.get(name.encode(), fields.get(name))
        return value.decode() if isinstance(value, bytes) else value

    chain = get("c")
    return Message(
        listener=listener,
        entry_id=entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
        thread_id=get("t") or "",
        payload=json.loads(get("p") or "{}"),
        chain=None if chain is None else json.loads(chain),
    )


def connect(settings: Settings, client_name: str) -> ThreadRegistry:
    """A strict registry on the run's server; its client (``reg.client``) carries the
    streams too. Every connection is named `client_name` (CLIENT SETNAME)."""
    common: dict[str, Any] = {
        "namespace": settings.namespace,
        "ttl": settings.ttl,
        "wait_replicas": settings.wait_replicas,
        "strict": True,
        "client_name": client_name,
        "socket_timeout": 10.0,
        "socket_connect_timeout": 5.0,
    }
    if settings.sentinels:
        if not settings.service:
            raise ValueError("--sentinel needs --service NAME")
        return ThreadRegistry.from_sentinel(
            list(settings.sentinels),
            settings.service,
            sentinel_kwargs={"socket_timeout": 2.0},
            **common,
        )
    if not settings.url:
        raise ValueError("the pipeline needs --url (or --sentinel ... --service ...)")
    return ThreadRegistry.from_url(settings.url, cluster=settings.cluster, **common)


def servers(client: Any) -> list[redis.Redis]:
    """A plain client per server holding data: each primary of a cluster, else the one."""
    if isinstance(client, redis.cluster.RedisCluster):
        cluster: Any = client  # redis-py's cluster client is untyped
        return [node.redis_connection for node in cluster.get_primaries()]
    return [client]


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """``HOST:PORT,HOST:PORT`` as address pairs; a clear error naming a bad one."""
    out = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--sentinel {item!r} must be HOST:PORT (several separated by commas)")
        out.append((host, int(port)))
    return tuple(out)
