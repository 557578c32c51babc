"""``thread-registry pipeline``: the reference message bus on Redis Streams, under faults.

N worker processes (spawn: nothing shared in memory) serve the router and three services
(``calculator.add``, ``echo``, ``planner``, which asks ``calculator.add`` in turn); the
console, in this process, sends M requests and waits for every answer. Each listener has
a stream and a consumer group; every worker is a consumer of each. Messages carry a
thread id and a payload, never a chain: the registry says where each answer goes.
``--chaos`` kills and restarts workers, flushes the script cache, kills the workers'
connections and (with Sentinel) fails the primary over. See docs/pipeline.md.

Modules: wire (settings, keys, messages), listeners (what each listener decides),
routing (the registry calls, in their safe order), worker, console, processes, chaos.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from typing import Any

import redis
import redis.sentinel

from ..default import URL_ENV
from ..errors import RegistryError
from .chaos import Chaos
from .console import Console, make_requests, percentile, prepare_streams, remove_streams
from .processes import WorkerPool
from .wire import CONSOLE_CLIENT_NAME, Settings, connect, parse_sentinels, stats_key

__all__ = ["Settings", "add_arguments", "run", "run_pipeline"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The pipeline command's options."""
    parser.add_argument("--url", default=os.environ.get(URL_ENV), help=f"a Redis URL (default: ${URL_ENV})")
    parser.add_argument("--cluster", action="store_true", help="the URL names a Redis Cluster node")
    parser.add_argument("--sentinel", help="HOST:PORT,... of the Sentinels (instead of --url)")
    parser.add_argument("--service", help="the Sentinels' name for the primary (with --sentinel)")
    parser.add_argument("--namespace", help="registry namespace (default: a fresh pipeline-xxxxxx)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument(
        "--requests", type=int, default=1000, help="requests the console sends (default 1000)"
    )
    parser.add_argument("--window", type=int, default=200, help="requests in flight at most (default 200)")
    parser.add_argument(
        "--rate",
        type=float,
        help="requests sent per second at most (default: no limit; with --chaos 100, so the faults "
        "have a run to hit)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every answer")
    parser.add_argument("--chaos", action="store_true", help="inject faults while the pipeline runs")
    parser.add_argument(
        "--wait-replicas",
        type=int,
        help="replicas every write waits for (default: with --sentinel, every replica the Sentinels "
        "know at the start; else 0)",
    )
    parser.add_argument("--ttl", type=float, default=3600.0, help="thread ttl in seconds (default 3600)")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="no registry: each message carries its whole chain (the benchmark's baseline)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def settings_from(args: argparse.Namespace) -> Settings:
    """The run's Settings from the parsed options; ValueError naming a bad one."""
    sentinels = parse_sentinels(args.sentinel) if args.sentinel else ()
    if sentinels and not args.service:
        raise ValueError("--sentinel needs --service NAME")
    if not sentinels and not args.url:
        raise ValueError(f"give --url (or set ${URL_ENV}), or --sentinel ... --service ...")
    for name in ("requests", "window"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} {getattr(args, name)} must be at least 1")
    wait = args.wait_replicas
    if wait is None:
        wait = every_replica(sentinels, args.service) if sentinels else 0
    return Settings(
        namespace=args.namespace or f"pipeline-{uuid.uuid4().hex[:6]}",
        url=None if sentinels else args.url,
        cluster=args.cluster,
        sentinels=sentinels,
        service=args.service,
        wait_replicas=wait,
        ttl=args.ttl,
        routing="chain" if args.baseline else "registry",
    )


def every_replica(sentinels: tuple[tuple[str, int], ...], service: str) -> int:
    """How many healthy replicas the Sentinels know for `service` (at least 1).

    Waiting for all of them is what makes an acknowledged write survive a failover:
    once a replica is promoted, the old primary can no longer get that many
    acknowledgements, while a replica still following it could give it one."""
    make: Any = redis.sentinel.Sentinel  # untyped in redis-py
    sentinel = make(list(sentinels), sentinel_kwargs={"socket_timeout": 2.0})
    try:
        return max(1, len(sentinel.discover_slaves(service)))
    finally:
        for s in sentinel.sentinels:
            s.close()


def run(args: argparse.Namespace) -> int:
    """Run the pipeline; print the summary (last line). 0 when nothing was lost or misrouted."""
    try:
        if args.workers < 1:
            raise ValueError(f"--workers {args.workers} must be at least 1")
        settings = settings_from(args)
    except (ValueError, redis.RedisError) as exc:
        print(f"thread-registry pipeline: {exc}", file=sys.stderr)
        return 2
    summary = run_pipeline(
        settings,
        workers=args.workers,
        requests=args.requests,
        window=args.window,
        rate=args.rate if args.rate is not None else (100.0 if args.chaos else None),
        timeout=args.timeout,
        chaos=args.chaos,
        progress=None if args.json else print,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print(" ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, dict | list)))
    return 0 if summary["lost"] == 0 and summary["misrouted"] == 0 else 1


def run_pipeline(
    settings: Settings,
    *,
    workers: int = 4,
    requests: int = 1000,
    window: int = 200,
    rate: float | None = None,
    timeout: float = 120.0,
    chaos: bool = False,
    drain_seconds: float = 15.0,
    progress: Any = None,
) -> dict[str, Any]:
    """One run, start to end; the summary as a dict (what ``--json`` prints)."""
    registry = connect(settings, CONSOLE_CLIENT_NAME)
    client = registry.client
    say = progress or (lambda *_: None)
    try:
        prepare_streams(client, settings.namespace)
        batch = make_requests(requests)
        console = Console(settings, registry, batch, window, rate)
        threads_before = len(registry.threads())
        pool = WorkerPool(settings, workers)
        say(
            f"pipeline: {workers} workers, {requests} requests, namespace {settings.namespace!r}, "
            f"routing by {'chain (baseline)' if settings.routing == 'chain' else 'registry'}"
            f"{', chaos' if chaos else ''}"
        )
        pool.start()
        injector = Chaos(settings, pool, client) if chaos else None
        try:
            try:
                if injector is not None:
                    injector.start()
                seconds = console.run(time.monotonic() + timeout)
            finally:
                if injector is not None:
                    injector.stop()
            quiet = console.drain(drain_seconds)
        finally:
            pool.stop()
        console.receive(block_ms=None)
        console.clean()
        stats = _worker_stats(client, settings.namespace)
        live = registry.threads()
        threads_after = len(live)
        remove_streams(client, settings.namespace)
    finally:
        registry.close()
    tally = console.tally
    latencies = console.latencies_ms()
    messages = stats.get("handled", 0) + tally.handled
    summary: dict[str, Any] = {
        "routing": settings.routing,
        "workers": workers,
        "chaos": chaos,
        "requests": requests,
        "answered": tally.answered,
        "lost": requests - tally.answered,
        "misrouted": tally.misrouted + stats.get("misrouted", 0),
        "duplicates": tally.duplicates,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(messages / seconds, 1) if seconds > 0 else None,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_stall_ms": round(console.max_stall * 1000, 1),
        "registry_ops": tally.registry_ops + stats.get("registry_ops", 0),
        "messages": messages,
        "already_answered": stats.get("already_answered", 0),
        "claimed": stats.get("claimed", 0),
        "worker_errors": stats.get("errors", 0),
        "send_retries": tally.send_retries,
        "streams_quiet": quiet,
        "threads_before": threads_before,
        "threads_after": threads_after,
        "namespace": settings.namespace,
    }
    if injector is not None:
        summary["faults"] = dict(injector.counts, worker_kills=pool.kills)
        if injector.failover_seconds is not None:
            summary["failover_s"] = round(injector.failover_seconds, 2)
    if tally.reasons:
        summary["misrouted_examples"] = tally.reasons
    unanswered = [r for r in batch if r.answered_at is None]
    if unanswered:  # where each stopped: the threads still alive below its own hop
        summary["lost_examples"] = [
            {
                "index": r.index,
                "service": r.payload["svc"],
                "sent": r.sent_at is not None,
                "threads_left": [t.chain for t in live if r.hop in t.hops],
            }
            for r in unanswered[:5]
        ]
    return summary


def _worker_stats(client: Any, namespace: str) -> dict[str, int]:
    try:
        raw = client.hgetall(stats_key(namespace))
    except RegistryError:
        return {}
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}
