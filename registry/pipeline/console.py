"""The console: sends the requests, collects and checks every answer, cleans up.

Each request gets a chain of its own: ``system.pipeline.console#<tag>`` (its request
thread, `t0`), then ``...console#<tag>.router`` (`t1`), on which it goes to the router.
Its answer comes back on `t0`. The console checks it (thread, nonce, the hop it was
routed to, the result, and for echo the path the registry held), counts a second answer
to one request as a duplicate, and cleans up `t0` after every answer (a duplicate may
have bound it again: each answer leaves the namespace as it found it).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..client import ThreadRegistry
from ..identity import request_hop
from .listeners import ANSWER, REQUEST, expected, expected_path
from .routing import Outgoing
from .wire import (
    ADD,
    CONSOLE,
    ECHO,
    GROUP,
    LISTENERS,
    ORGANISM,
    PLANNER,
    ROUTER,
    Message,
    Settings,
    decode,
    stats_key,
    stream_key,
)
from .worker import FAILURES, add_messages

SEND_BATCH = 50


@dataclass
class Request:
    index: int
    hop: str  # console#<tag>
    payload: dict[str, Any]
    expect: Any
    t0: str | None = None  # the request thread (registry routing)
    t1: str | None = None
    sent_at: float | None = None
    answered_at: float | None = None


@dataclass
class Tally:
    answered: int = 0
    misrouted: int = 0
    duplicates: int = 0
    handled: int = 0  # console stream entries read
    registry_ops: int = 0
    send_retries: int = 0
    errors: int = 0
    reasons: list[str] = field(default_factory=list)

    def misroute(self, why: str) -> None:
        self.misrouted += 1
        if len(self.reasons) < 5:
            self.reasons.append(why)


def make_requests(count: int) -> list[Request]:
    """`count` requests over the three services, each with its own tag and nonce."""
    services = (ADD, ECHO, PLANNER)
    out = []
    for i in range(count):
        service = services[i % len(services)]
        nonce = os.urandom(8).hex()
        payload: dict[str, Any] = {"k": REQUEST, "i": i, "n": nonce, "svc": service}
        if service == ECHO:
            payload["s"] = f"hello {i}"
        else:
            payload["a"], payload["b"] = i, 3 * i + 1
        out.append(Request(i, request_hop(CONSOLE, f"{i}-{nonce[:6]}"), payload, expected(payload)))
    return out


def prepare_streams(client: Any, namespace: str) -> None:
    """Fresh streams with their consumer groups (an earlier run's are removed first)."""
    keys = [stream_key(namespace, name) for name in LISTENERS]
    pipe = client.pipeline(transaction=False)
    for key in [*keys, stats_key(namespace)]:
        pipe.delete(key)
    for key in keys:
        pipe.xgroup_create(key, GROUP, id="0", mkstream=True)
    pipe.execute()


def remove_streams(client: Any, namespace: str) -> None:
    pipe = client.pipeline(transaction=False)
    for key in [*(stream_key(namespace, name) for name in LISTENERS), stats_key(namespace)]:
        pipe.delete(key)
    pipe.execute()


def quiet(client: Any, namespace: str) -> bool:
    """Whether every worker stream has nothing pending and nothing undelivered."""
    for name in LISTENERS:
        if name == CONSOLE:
            continue
        key = stream_key(namespace, name)
        last = client.xrevrange(key, count=1)
        for group in client.xinfo_groups(key):
            delivered = group["last-delivered-id"]
            if int(group["pending"]) or (last and _text(last[0][0]) != _text(delivered)):
                return False
    return True


class Console:
    """Sends requests with at most `window` in flight (and at most `rate` a second);
    reads and checks the answers."""

    def __init__(
        self,
        settings: Settings,
        registry: ThreadRegistry,
        requests: list[Request],
        window: int,
        rate: float | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.client = registry.client
        self.requests = requests
        self.window = window
        self.rate = rate  # requests per second at most (None: as fast as the window allows)
        self.chain_routing = settings.routing == "chain"
        self.root = "" if self.chain_routing else registry.initialize_root(ORGANISM)
        self.by_t0: dict[str, Request] = {}
        self.by_hop = {r.hop: r for r in requests}
        self.unsent = list(reversed(requests))
        self.in_flight = 0
        self.to_clean: set[str] = set()
        self.tally = Tally()
        self.key = stream_key(settings.namespace, CONSOLE)
        self.max_stall = 0.0
        self._last_progress: float | None = None

    # ------------------------------------------------------------ the run

    def run(self, deadline: float) -> float:
        """Until every request is answered or `deadline` (monotonic); returns the seconds taken."""
        began = time.monotonic()
        self._last_progress = began
        while self.tally.answered < len(self.requests) and time.monotonic() < deadline:
            room = self.window - self.in_flight
            if self.rate:
                allowed = int((time.monotonic() - began) * self.rate) + 1
                room = min(room, allowed - (len(self.requests) - len(self.unsent)))
            if self.unsent and room > 0:
                self.send(min(room, SEND_BATCH))
            self.receive(block_ms=20)
        ended = time.monotonic()
        if self.tally.answered < len(self.requests):
            self._stall(ended)
        return ended - began

    def send(self, count: int) -> None:
        batch = [self.unsent.pop() for _ in range(min(count, len(self.unsent)))]
        try:
            outgoing = self._chains(batch) if self.chain_routing else self._threads(batch)
            add_messages(self.client, self.settings.namespace, outgoing, self.settings.wait_replicas)
        except FAILURES:
            # Nothing of it counts as sent; sent again (same chains, same ids): at worst
            # the router gets a request twice, and the console a duplicate answer.
            self.tally.send_retries += 1
            self.unsent.extend(reversed(batch))
            time.sleep(0.05)
            return
        now = time.monotonic()
        for r in batch:
            r.sent_at = r.sent_at or now
        self.in_flight += len(batch)

    def _threads(self, batch: list[Request]) -> list[Outgoing]:
        b = self.registry.batch()
        for r in batch:
            b.extend_chain(self.root, r.hop)
        t0s = b.execute()
        b = self.registry.batch()
        for t0 in t0s:
            b.extend_chain(t0, ROUTER)
        t1s = b.execute()
        self.tally.registry_ops += 2 * len(batch)
        for r, t0, t1 in zip(batch, t0s, t1s, strict=True):
            r.t0, r.t1 = t0, t1
            self.by_t0[t0] = r
        return [Outgoing(ROUTER, r.t1, r.payload) for r in batch]

    def _chains(self, batch: list[Request]) -> list[Outgoing]:
        return [Outgoing(ROUTER, None, r.payload, ["system", ORGANISM, r.hop, ROUTER]) for r in batch]

    def receive(self, block_ms: int | None) -> None:
        """Read and check the answers there are (waiting up to `block_ms`; None: not at all)."""
        try:
            reply = self.client.xreadgroup(GROUP, CONSOLE, {self.key: ">"}, count=500, block=block_ms)
        except FAILURES:
            self.tally.errors += 1
            time.sleep(0.05)
            return
        entries = [
            decode(CONSOLE, eid, fields) for _key, items in reply or () for eid, fields in items if fields
        ]
        for msg in entries:
            self.check(msg)
        self.tally.handled += len(entries)
        try:
            if entries:
                self.client.xack(self.key, GROUP, *[m.entry_id for m in entries])
            self.clean()
        except FAILURES:
            self.tally.errors += 1

    def check(self, msg: Message) -> None:
        """One answer: whose it is, whether it is right, whether it is the first."""
        p = msg.payload
        if self.chain_routing:
            r = self.by_hop.get(str(p.get("to")))
            if r is not None and msg.chain != ["system", ORGANISM, r.hop]:
                self.tally.misroute(f"answer to {r.hop} came with chain {msg.chain}")
                return
        else:
            self.to_clean.add(msg.thread_id)
            r = self.by_t0.get(msg.thread_id)
        if r is None:
            self.tally.misroute(f"answer on thread {msg.thread_id or p.get('to')} no request of this run has")
            return
        if p.get("k") != ANSWER or p.get("n") != r.payload["n"] or p.get("i") != r.index:
            self.tally.misroute(f"request {r.index} got nonce {p.get('n')} of request {p.get('i')}")
            return
        if p.get("to") != r.hop:
            self.tally.misroute(f"request {r.index}'s answer was routed to {p.get('to')}, not {r.hop}")
            return
        if p.get("r") != r.expect:
            self.tally.misroute(f"request {r.index} expected {r.expect!r}, got {p.get('r')!r}")
            return
        if r.payload["svc"] == ECHO and p.get("path") != expected_path(ORGANISM, r.hop, ECHO):
            self.tally.misroute(f"request {r.index}: echo saw path {p.get('path')}")
            return
        if r.answered_at is not None:
            self.tally.duplicates += 1
            return
        now = time.monotonic()
        r.answered_at = now
        self.tally.answered += 1
        self.in_flight -= 1
        self._stall(now)

    def _stall(self, now: float) -> None:
        if self._last_progress is not None:
            self.max_stall = max(self.max_stall, now - self._last_progress)
        self._last_progress = now

    def clean(self) -> None:
        """Remove the request thread of every answer seen (also of duplicates)."""
        if not self.to_clean:
            return
        ids = sorted(self.to_clean)
        b = self.registry.batch()
        for tid in ids:
            b.cleanup(tid)
        self.tally.registry_ops += len(ids)
        for tid, result in zip(ids, b.execute(raise_on_error=False), strict=True):
            if not isinstance(result, Exception):
                self.to_clean.discard(tid)

    def drain(self, seconds: float) -> bool:
        """After the run: read late duplicates until the workers' streams are quiet
        (nothing pending, nothing undelivered) or `seconds` pass; True if quiet."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.receive(block_ms=100)
            try:
                if quiet(self.client, self.settings.namespace):
                    self.receive(block_ms=None)
                    return True
            except FAILURES:
                time.sleep(0.1)
        return False

    # ------------------------------------------------------------ the figures

    def latencies_ms(self) -> list[float]:
        return sorted(
            (r.answered_at - r.sent_at) * 1000
            for r in self.requests
            if r.answered_at is not None and r.sent_at is not None
        )


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[index], 2)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
