"""A worker process: a consumer of every worker listener's stream (router and services).

Loop: read new entries (``XREADGROUP ... >``), and every `claim_every_s` take over the
entries other consumers (dead ones, or this one after an error) left unacknowledged for
`claim_idle_ms` (``XAUTOCLAIM``). Each read is handled as one batch, in four steps:

1. the routing resolves every entry (one registry batch, see routing.py);
2. every outgoing message is added to its stream (one pipeline; with ``wait_replicas``,
   ``WAIT`` at its end, and fewer acknowledgements fail the step);
3. the answered threads are cleaned up (one registry batch);
4. the handled entries are acknowledged (``XACK``) and the counters added up.

Any error in a step leaves its entries unacknowledged: they are handled again, from
step 1, once claimed. Nothing is acknowledged before its consequences are in Redis.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

import redis
import redis.cluster

from ..errors import RegistryError, UnknownThreadError
from .listeners import Answer, Forward, Misrouted, act
from .routing import ChainRouting, Outgoing, RegistryRouting, Routing
from .wire import (
    CLIENT_NAME_PREFIX,
    GROUP,
    WORKER_LISTENERS,
    Message,
    Settings,
    connect,
    decode,
    encode,
    stats_key,
    stream_key,
)

FAILURES = (redis.RedisError, RegistryError, OSError)
WAIT_TIMEOUT_MS = 2000


class StreamDurabilityError(RegistryError):
    """Fewer replicas than asked acknowledged the messages just added."""


def add_messages(client: Any, namespace: str, outgoing: list[Outgoing], wait_replicas: int) -> None:
    """XADD each message to its listener's stream in one round trip; with
    `wait_replicas`, WAIT in the same round trip, and raise if fewer acknowledged."""
    if not outgoing:
        return
    pipe = client.pipeline(transaction=False)
    for out in outgoing:
        pipe.xadd(stream_key(namespace, out.listener), encode(out.thread_id, out.payload, out.chain))
    waits = wait_replicas and not isinstance(client, redis.cluster.RedisCluster)
    if waits:
        pipe.execute_command("WAIT", wait_replicas, WAIT_TIMEOUT_MS)
    replies = pipe.execute()
    if waits and int(replies[-1]) < wait_replicas:
        raise StreamDurabilityError(f"{replies[-1]} of {wait_replicas} replicas took the messages")


class Worker:
    """One consumer (named after its slot, generation and pid) of the worker listeners."""

    def __init__(self, settings: Settings, slot: int, generation: int) -> None:
        self.settings = settings
        self.consumer = f"w{slot}.{generation}.{os.getpid()}"
        self.registry = connect(settings, f"{CLIENT_NAME_PREFIX}{slot}")
        self.client = self.registry.client
        self.routing: Routing = (
            ChainRouting() if settings.routing == "chain" else RegistryRouting(self.registry)
        )
        self.streams = {stream_key(settings.namespace, name): name for name in WORKER_LISTENERS}
        self.cursors = dict.fromkeys(self.streams, "0-0")
        self.errors_shown = 0
        self.current: list[Message] = []  # the entries being handled now

    def run_forever(self) -> None:
        next_claim = time.monotonic() + self.settings.claim_every_s
        while True:
            try:
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + self.settings.claim_every_s
                    self.handle(self.claim(), claimed=True)
                self.handle(self.read())
            except FAILURES as exc:  # a lost connection, a failover: entries stay pending
                self.count(errors=1)
                self.show(exc)
                time.sleep(0.05)

    def read(self) -> list[Message]:
        reply = self.client.xreadgroup(
            GROUP,
            self.consumer,
            dict.fromkeys(self.streams, ">"),
            count=self.settings.read_count,
            block=200,
        )
        return [
            decode(self.streams[_text(key)], entry_id, fields)
            for key, entries in reply or ()
            for entry_id, fields in entries
            if fields is not None
        ]

    def claim(self) -> list[Message]:
        out: list[Message] = []
        for key, listener in self.streams.items():
            reply = self.client.xautoclaim(
                key,
                GROUP,
                self.consumer,
                self.settings.claim_idle_ms,
                start_id=self.cursors[key],
                count=self.settings.read_count,
            )
            self.cursors[key] = _text(reply[0])
            out += [decode(listener, entry_id, fields) for entry_id, fields in reply[1] if fields]
        return out

    def handle(self, messages: list[Message], claimed: bool = False) -> None:
        """Handle one read's entries; acknowledge those whose effects are in Redis."""
        if not messages:
            return
        self.current = messages
        done: list[Message] = []  # to acknowledge
        misrouted = already = 0
        work: list[tuple[Message, Forward | Answer]] = []
        for msg in messages:
            action = act(msg.listener, msg.payload)
            if isinstance(action, Misrouted):
                misrouted += 1
                done.append(msg)
            else:
                work.append((msg, action))
        ops_before = self.routing.ops
        try:
            resolved = self.routing.resolve(work) if work else []
            sending: list[tuple[Message, Forward | Answer, Outgoing]] = []
            for (msg, action), out in zip(work, resolved, strict=True):
                if isinstance(out, UnknownThreadError):
                    already += 1  # handled to the end before: its answer is on its way
                    done.append(msg)
                elif isinstance(out, Exception):
                    self.show(out)  # stays pending, handled again when claimed
                else:
                    sending.append((msg, action, out))
            add_messages(
                self.client, self.settings.namespace, [s[2] for s in sending], self.settings.wait_replicas
            )
            answered = [msg for msg, action, _ in sending if isinstance(action, Answer)]
            # Entry ids are unique within a stream only: key by both.
            cleaned = dict(
                zip([(m.listener, m.entry_id) for m in answered], self.routing.finish(answered), strict=True)
            )
            for msg, _action, _out in sending:
                failure = cleaned.get((msg.listener, msg.entry_id))
                if failure is None or isinstance(failure, UnknownThreadError):
                    done.append(msg)
        finally:
            self.acknowledge(
                done,
                handled=len(done),
                claimed=len(messages) if claimed else 0,
                already_answered=already,
                misrouted=misrouted,
                registry_ops=self.routing.ops - ops_before,
            )

    def acknowledge(self, done: list[Message], **counts: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        by_stream: dict[str, list[str]] = {}
        for msg in done:
            by_stream.setdefault(stream_key(self.settings.namespace, msg.listener), []).append(msg.entry_id)
        for key, ids in by_stream.items():
            pipe.xack(key, GROUP, *ids)
        for name, value in counts.items():
            if value:
                pipe.hincrby(stats_key(self.settings.namespace), name, value)
        pipe.execute()

    def count(self, **counts: int) -> None:
        try:
            for name, value in counts.items():
                self.client.hincrby(stats_key(self.settings.namespace), name, value)
        except FAILURES:
            pass

    def show(self, exc: BaseException) -> None:
        if self.errors_shown < 3 and not isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            self.errors_shown += 1
            print(f"worker {self.consumer}: {type(exc).__name__}: {exc}", file=sys.stderr)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def worker_main(settings: Settings, slot: int, generation: int, ready: Any = None) -> None:
    """A worker process's body (multiprocessing, spawn): runs until it is terminated.
    Puts its slot on `ready` once it has reached the server."""
    try:
        worker = Worker(settings, slot, generation)
        worker.client.ping()
        if ready is not None:
            ready.put(slot)
        worker.run_forever()
    except KeyboardInterrupt:
        pass
    except BaseException:
        traceback.print_exc()
        raise
