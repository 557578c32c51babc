"""Sending Calls to Redis: one call, or many in one round trip; sync and async.

The single-call fast path is one EVALSHA through the user's client (redis-py's cluster
client follows MOVED/ASK/TRYAGAIN itself). Batches, and every write when
``wait_replicas`` is set, go through `send_plan`: one pipeline on the connection that
owns the namespace (the client itself, or on a cluster the node holding the
namespace's slot), with WAIT at its end so acknowledgement costs no extra round trip.
The plan loads scripts the server may lack at the head of the pipeline and decides
what to re-send after NOSCRIPT, MOVED, ASK, TRYAGAIN or a lost connection; the sync
and async drivers below only do the I/O it asks for. Re-sending is
safe because every operation is idempotent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    NoScriptError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .errors import DurabilityError, from_script_error
from .operations import Call

T = TypeVar("T")

# How long a batch (or an acknowledged write) keeps re-sending through failover,
# resharding or a lost connection before it gives up and raises.
RETRY_SECONDS = 20.0
NOSCRIPT_ATTEMPTS = 3
# What a whole send may fail with and still be retried (the operations are idempotent).
# ClusterError is what redis-py raises once its own TRYAGAIN/MOVED budget ("TTL") ran out.
TRANSIENT = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    ClusterError,
    SlotNotCoveredError,
    TryAgainError,
    OSError,
)


def default_retry_seconds(client: Any) -> float:
    """How long to keep retrying through failover: on Cluster and Sentinel clients, where a
    failover is expected and takes seconds; on a single server, not at all (redis-py's own
    connection retries apply), so a dead server is reported at once."""
    if isinstance(client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster):
        return RETRY_SECONDS
    pool = getattr(client, "connection_pool", None)
    if isinstance(
        pool, redis.sentinel.SentinelConnectionPool | redis.asyncio.sentinel.SentinelConnectionPool
    ):
        return RETRY_SECONDS
    return 0.0


class Backoff:
    """Sleeps that double from 50 ms to 500 ms, within a budget of seconds."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.started: float | None = None
        self.delay = 0.05

    def next_delay(self) -> float | None:
        """The next sleep, or None when the budget is spent."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if now - self.started >= self.budget:
            return None
        delay, self.delay = self.delay, min(self.delay * 2, 0.5)
        return delay

    def spent(self) -> bool:
        return self.started is not None and time.monotonic() - self.started >= self.budget


def map_error(exc: ResponseError) -> Exception:
    """The registry exception for a script's error reply, else the reply itself."""
    return from_script_error(str(exc)) or exc


@dataclass(frozen=True, slots=True)
class Durability:
    """``wait_replicas`` and ``wait_timeout_ms``: WAIT after every write."""

    replicas: int
    timeout_ms: int


# ---------------------------------------------------------------- what the plan asks for


@dataclass(frozen=True, slots=True)
class Send:
    """Pipeline these commands on one connection; reply with the list of results
    (errors in place), or with the exception if the whole send failed."""

    commands: list[tuple[Any, ...]]
    node: tuple[str, int] | None  # a cluster node to send to; None: the namespace's owner
    asking: bool  # prefix each command with ASKING (slot being imported there)


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float
    refresh: bool  # re-read the cluster's slot layout first


Step = Send | Pause


@dataclass(slots=True)
class Outcome:
    replies: list[Any]
    acknowledged: int | None  # the least WAIT answer over the rounds that wrote


def send_plan(
    calls: Sequence[Call[Any]],
    keys: Sequence[str],
    durability: Durability | None,
    loaded: set[str],
    retry_seconds: float,
) -> Generator[Step, Any, Outcome]:
    """Decides what to send, and what to re-send, until every call has its reply.

    Order matters: the calls must take effect in their order. Scripts not known to be
    on the server (`loaded`, kept by the transport) are loaded at the head of the same
    pipeline, so a NOSCRIPT can only come from a flush or failover in the middle of it;
    then, as with MOVED, ASK or TRYAGAIN during a failover or a slot migration, the
    calls that failed are a suffix of the round, and are re-sent in their order.
    """
    outcome = Outcome([None] * len(calls), None)
    scripts = {i: call.script for i, call in enumerate(calls) if call.script is not None}
    todo = list(scripts)
    node: tuple[str, int] | None = None
    asking = False
    noscript_rounds = 0
    backoff = Backoff(retry_seconds)

    while todo:
        if noscript_rounds >= 2:
            # The cache keeps being flushed under us: send the sources themselves.
            loads = []
            commands: list[tuple[Any, ...]] = [
                ("EVAL", scripts[i].source, len(keys), *keys, *calls[i].args) for i in todo
            ]
        else:
            loads = list({scripts[i].sha: scripts[i] for i in todo if scripts[i].sha not in loaded}.values())
            commands = [("SCRIPT", "LOAD", s.source) for s in loads]
            commands += [("EVALSHA", scripts[i].sha, len(keys), *keys, *calls[i].args) for i in todo]
        wait = durability is not None and any(calls[i].writes for i in todo)
        if wait:
            assert durability is not None
            commands.append(("WAIT", durability.replicas, durability.timeout_ms))
        got = yield Send(commands, node, asking)
        node, asking = None, False
        if not isinstance(got, BaseException):
            failed_load = next((r for r in got[: len(loads)] if isinstance(r, Exception)), None)
            if failed_load is not None:
                got = failed_load
        if isinstance(got, BaseException):
            delay = backoff.next_delay()
            if delay is None:
                raise got
            yield Pause(delay, refresh=True)
            continue
        loaded.update(s.sha for s in loads)
        got = got[len(loads) :]
        if wait:
            # An error instead of a count (a primary demoted while we waited answers
            # UNBLOCKED) acknowledges nothing.
            acked = got[-1] if isinstance(got[-1], int) else 0
            got = got[:-1]
            prior = outcome.acknowledged
            outcome.acknowledged = acked if prior is None else min(prior, acked)
        retry: list[int] = []
        refresh = pause = False
        for i, reply in zip(todo, got, strict=True):
            if isinstance(reply, NoScriptError):
                retry.append(i)
                loaded.clear()  # a flush or a failover took every script
            elif isinstance(reply, MovedError):  # before AskError: MovedError subclasses it
                retry.append(i)
                refresh = True
            elif isinstance(reply, AskError):
                retry.append(i)
                node, asking = (reply.host, int(reply.port)), True
            elif isinstance(reply, TryAgainError | ClusterDownError):
                retry.append(i)
                pause = refresh = True
            elif isinstance(reply, ResponseError):
                outcome.replies[i] = map_error(reply)
            else:
                outcome.replies[i] = reply
        if any(isinstance(reply, NoScriptError) for reply in got):
            noscript_rounds += 1
        todo = retry
        delay = backoff.next_delay() if pause else 0.0
        if todo and (noscript_rounds > NOSCRIPT_ATTEMPTS or delay is None):
            for i in todo:
                outcome.replies[i] = ResponseError(
                    f"gave up re-sending {scripts[i].name} within {retry_seconds}s"
                )
            break
        if refresh or pause:
            yield Pause(delay or 0.0, refresh=refresh)
    return outcome


def check_durability(outcome: Outcome, durability: Durability | None, results: list[Any]) -> None:
    if durability is None or outcome.acknowledged is None:
        return
    if outcome.acknowledged < durability.replicas:
        raise DurabilityError(
            f"wait_replicas={durability.replicas} but {outcome.acknowledged} replica(s) acknowledged "
            f"within {durability.timeout_ms} ms; the write is on the primary and may be lost if it "
            "fails now; retrying the call is safe",
            outcome.acknowledged,
            results,
        )


# ---------------------------------------------------------------- sync


def run_call(client: Any, keys: Sequence[str], call: Call[T], retry_seconds: float = 0.0) -> T:
    """Send one Call; through a failover, retry for up to `retry_seconds` (idempotent)."""
    try:
        return run_call_once(client, keys, call)
    except TRANSIENT:
        if retry_seconds <= 0:
            raise
    backoff = Backoff(retry_seconds)
    while True:
        delay = backoff.next_delay()
        time.sleep(delay or 0.0)
        try:
            return run_call_once(client, keys, call)
        except TRANSIENT:
            if backoff.spent():
                raise


def run_call_once(client: Any, keys: Sequence[str], call: Call[T]) -> T:
    """Send one Call with EVALSHA; load the script and retry once on NOSCRIPT."""
    s = call.script
    if s is None:
        return call.decode(None)
    try:
        try:
            reply = client.execute_command("EVALSHA", s.sha, len(keys), *keys, *call.args)
        except NoScriptError:
            client.script_load(s.source)
            try:
                reply = client.execute_command("EVALSHA", s.sha, len(keys), *keys, *call.args)
            except NoScriptError:
                # Flushed again between our load and our call: send the source itself.
                reply = client.execute_command("EVAL", s.source, len(keys), *keys, *call.args)
    except ResponseError as exc:
        raise map_error(exc) from None
    return call.decode(reply)


class TransportBase:
    """What both transports hold: the client, the namespace's keys, the durability and
    retry settings, and which scripts the server is known to have."""

    cluster_class: Any

    def __init__(
        self,
        client: Any,
        keys: Sequence[str],
        durability: Durability | None,
        retry_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.keys = tuple(keys)
        self.durability = durability
        self.retry_seconds = default_retry_seconds(client) if retry_seconds is None else retry_seconds
        self.cluster = isinstance(client, self.cluster_class)
        self.loaded: set[str] = set()  # SHAs of scripts this transport saw the server take

    def plan(self, calls: Sequence[Call[Any]]) -> Generator[Step, Any, Outcome]:
        return send_plan(calls, self.keys, self.durability, self.loaded, self.retry_seconds)

    def single_result(self, call: Call[T], outcome: Outcome) -> T:
        """The result of a call sent through the plan (an acknowledged write)."""
        reply = outcome.replies[0]
        if isinstance(reply, Exception):
            raise reply
        result = call.decode(reply)
        check_durability(outcome, self.durability, [result])
        return result


class SyncTransport(TransportBase):
    """Sends Calls for one registry: its client, its keys, its durability setting."""

    cluster_class = redis.cluster.RedisCluster

    def run(self, call: Call[T]) -> T:
        if self.durability is None or not call.writes:
            return run_call(self.client, self.keys, call, self.retry_seconds)
        return self.single_result(call, self._drive(self.plan([call])))

    def send_many(self, calls: Sequence[Call[Any]]) -> Outcome:
        return self._drive(self.plan(calls))

    def _drive(self, plan: Generator[Step, Any, Outcome]) -> Outcome:
        try:
            step = next(plan)
            while True:
                if isinstance(step, Send):
                    try:
                        result: Any = self._send(step)
                    except TRANSIENT as exc:
                        result = exc
                    step = plan.send(result)
                else:
                    if step.refresh and self.cluster:
                        self.client.nodes_manager.initialize()
                    time.sleep(step.seconds)
                    step = plan.send(None)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome

    def _send(self, step: Send) -> list[Any]:
        conn = self.client
        if self.cluster:
            if step.node is None:
                target = self.client.get_node_from_key(self.keys[0])
            else:
                target = self.client.get_node(host=step.node[0], port=step.node[1])
                if target is None:
                    raise ClusterDownError(f"node {step.node} not known yet")
            conn = self.client.get_redis_connection(target)
        pipe = conn.pipeline(transaction=False)
        for command in step.commands:
            if step.asking:
                pipe.execute_command("ASKING")
            pipe.execute_command(*command)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        return replies[1::2] if step.asking else replies


# ---------------------------------------------------------------- async


async def run_call_async(client: Any, keys: Sequence[str], call: Call[T], retry_seconds: float = 0.0) -> T:
    """Await one Call; through a failover, retry for up to `retry_seconds` (idempotent)."""
    try:
        return await run_call_once_async(client, keys, call)
    except TRANSIENT:
        if retry_seconds <= 0:
            raise
    backoff = Backoff(retry_seconds)
    while True:
        delay = backoff.next_delay()
        await asyncio.sleep(delay or 0.0)
        try:
            return await run_call_once_async(client, keys, call)
        except TRANSIENT:
            if backoff.spent():
                raise


async def run_call_once_async(client: Any, keys: Sequence[str], call: Call[T]) -> T:
    """Await one Call with EVALSHA; load the script and retry once on NOSCRIPT."""
    s = call.script
    if s is None:
        return call.decode(None)
    try:
        try:
            reply = await client.execute_command("EVALSHA", s.sha, len(keys), *keys, *call.args)
        except NoScriptError:
            await client.script_load(s.source)
            try:
                reply = await client.execute_command("EVALSHA", s.sha, len(keys), *keys, *call.args)
            except NoScriptError:
                # Flushed again between our load and our call: send the source itself.
                reply = await client.execute_command("EVAL", s.source, len(keys), *keys, *call.args)
    except ResponseError as exc:
        raise map_error(exc) from None
    return call.decode(reply)


class AsyncTransport(TransportBase):
    """The asyncio twin of SyncTransport (same plan, awaited I/O)."""

    cluster_class = redis.asyncio.cluster.RedisCluster

    def __init__(
        self,
        client: Any,
        keys: Sequence[str],
        durability: Durability | None,
        retry_seconds: float | None = None,
    ) -> None:
        super().__init__(client, keys, durability, retry_seconds)
        self._node_clients: dict[str, redis.asyncio.Redis] = {}

    async def run(self, call: Call[T]) -> T:
        if self.durability is None or not call.writes:
            return await run_call_async(self.client, self.keys, call, self.retry_seconds)
        return self.single_result(call, await self._drive(self.plan([call])))

    async def send_many(self, calls: Sequence[Call[Any]]) -> Outcome:
        return await self._drive(self.plan(calls))

    async def _drive(self, plan: Generator[Step, Any, Outcome]) -> Outcome:
        try:
            step = next(plan)
            while True:
                if isinstance(step, Send):
                    try:
                        result: Any = await self._send(step)
                    except TRANSIENT as exc:
                        result = exc
                    step = plan.send(result)
                else:
                    if step.refresh and self.cluster:
                        await self.client.nodes_manager.initialize()
                    await asyncio.sleep(step.seconds)
                    step = plan.send(None)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome

    async def _send(self, step: Send) -> list[Any]:
        conn = self.client
        if self.cluster:
            conn = await self._node_client(step.node)
        pipe = conn.pipeline(transaction=False)
        for command in step.commands:
            if step.asking:
                pipe.execute_command("ASKING")
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies[1::2] if step.asking else replies

    async def _node_client(self, address: tuple[str, int] | None) -> redis.asyncio.Redis:
        # The async cluster client has no per-node client to pipeline on, so keep one
        # plain client per node, made with the cluster client's connection settings.
        if address is None:
            node = self.client.get_node_from_key(self.keys[0])
        else:
            node = self.client.get_node(host=address[0], port=address[1])
            if node is None:
                raise ClusterDownError(f"node {address} not known yet")
        found = self._node_clients.get(node.name)
        if found is None:
            kwargs = {k: v for k, v in node.connection_kwargs.items() if k not in ("host", "port")}
            pool = redis.asyncio.ConnectionPool(
                connection_class=node.connection_class, host=node.host, port=node.port, **kwargs
            )
            found = self._node_clients[node.name] = redis.asyncio.Redis(connection_pool=pool)
        return found

    async def aclose(self) -> None:
        for node_client in self._node_clients.values():
            await node_client.aclose()
        self._node_clients.clear()
