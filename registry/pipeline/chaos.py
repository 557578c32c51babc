"""Faults injected while a pipeline runs (``--chaos``), from a thread of the console process.

- every `kill_every` s: SIGKILL of a random worker process, and its restart;
- every second: ``SCRIPT FLUSH`` on every server holding data;
- every `client_kill_every` s: ``CLIENT KILL ID`` of every connection whose name says it
  is a worker's (CLIENT LIST, then one kill per id: Redis 7.0 has no kill by name);
- with Sentinel, once, `failover_after` s in: ``SENTINEL FAILOVER``, then, once every
  Sentinel names the new primary, ``REPLICAOF`` sent to the old one at once (what the
  Sentinels would do some seconds later; until then it would still take writes).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from typing import Any

import redis

from .processes import WorkerPool
from .wire import CLIENT_NAME_PREFIX, Settings, servers

FAULT_ERRORS = (redis.RedisError, OSError)


class Chaos(threading.Thread):
    """Injects the faults until stop(); `counts` says how many of each ran."""

    def __init__(
        self,
        settings: Settings,
        pool: WorkerPool,
        client: Any,
        *,
        seed: int | None = None,
        kill_every: float = 1.5,
        flush_every: float = 1.0,
        client_kill_every: float = 2.0,
        failover_after: float = 1.0,
    ) -> None:
        super().__init__(name="pipeline-chaos", daemon=True)
        self.settings = settings
        self.pool = pool
        self.client = client
        self.rng = random.Random(seed)
        self.every = {"kill": kill_every, "flush": flush_every, "client_kill": client_kill_every}
        self.failover_after = failover_after if settings.sentinels else None
        self.counts: Counter[str] = Counter()
        self.failover_seconds: float | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(60)

    def run(self) -> None:
        start = time.monotonic()
        due = {name: start + every * self.rng.uniform(0.3, 1.0) for name, every in self.every.items()}
        actions = {"kill": self.kill_worker, "flush": self.script_flush, "client_kill": self.client_kill}
        while not self._stop_event.wait(0.05):
            now = time.monotonic()
            if self.failover_after is not None and now - start >= self.failover_after:
                self.failover_after = None
                self._try("failover", self.failover)
            for name, when in due.items():
                if now >= when:
                    due[name] = now + self.every[name]
                    self._try(name, actions[name])

    def _try(self, name: str, action: Any) -> None:
        try:
            action()
            self.counts[name] += 1
        except FAULT_ERRORS:
            self.counts[f"{name}_failed"] += 1

    def kill_worker(self) -> None:
        self.pool.kill_and_restart(self.rng.randrange(self.pool.count))

    def script_flush(self) -> None:
        for server in servers(self.client):
            server.script_flush()

    def client_kill(self) -> None:
        for server in servers(self.client):
            for info in server.client_list():
                if str(info.get("name", "")).startswith(CLIENT_NAME_PREFIX):
                    with contextlib.suppress(redis.ResponseError):  # gone meanwhile
                        server.client_kill_filter(_id=info["id"])
                        self.counts["connections_killed"] += 1

    def failover(self) -> None:
        began = time.monotonic()
        sentinels: list[Any] = [
            redis.Redis(host=h, port=p, socket_timeout=2.0) for h, p in self.settings.sentinels
        ]
        service = self.settings.service
        try:
            old = _named_primary(sentinels[0], service)
            sentinels[0].execute_command("SENTINEL", "FAILOVER", service)
            deadline = time.monotonic() + 30
            while True:
                named = set()
                for s in sentinels:
                    with contextlib.suppress(*FAULT_ERRORS):
                        named.add(_named_primary(s, service))
                if len(named) == 1 and old not in named:
                    new = named.pop()
                    break
                if time.monotonic() > deadline:
                    raise redis.TimeoutError(f"sentinels still name {sorted(named)} after SENTINEL FAILOVER")
                time.sleep(0.05)
            demoted: Any = redis.Redis(host=old[0], port=old[1], socket_timeout=2.0)
            with contextlib.suppress(*FAULT_ERRORS), demoted:
                demoted.execute_command("REPLICAOF", new[0], str(new[1]))
            self.failover_seconds = time.monotonic() - began
        finally:
            for s in sentinels:
                s.close()


def _named_primary(sentinel: Any, service: str | None) -> tuple[str, int]:
    host, port = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", service)
    return (host.decode() if isinstance(host, bytes) else str(host), int(port))
