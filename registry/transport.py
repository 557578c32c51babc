"""Sending Calls to Redis: one call, or many in one round trip; sync and async.

The single-call fast path is one EVALSHA through the user's client (redis-py's cluster
client follows MOVED/ASK/TRYAGAIN itself, and its retries may re-send it: safe, since
such a call is idempotent and removes nothing). Batches, removals, and every write
when ``wait_replicas`` is set go through `send_plan`: one pipeline on the connection
that owns the namespace (the client itself, or on a cluster the node holding the
namespace's slot), with WAIT at its end so acknowledgement costs no extra round trip.
The drivers below write that pipeline on a connection of their own and read its
replies one by one, so they know how far a lost connection got; they do only the I/O
the plan asks for.

Rules of the plan (everything that decides what is sent again lives in `send_plan`):

1. Calls take effect in their order, or the caller is told they did not.
2. A round loads either every script it runs or none: none only when this transport
   saw the server take each of them. The loads go first, in one MULTI/EXEC. So a
   flush before the round's first EVALSHA makes every EVALSHA of it fail alike, never
   only some, and a flush after it makes a suffix fail.
3. A call whose reply says it did not run (NOSCRIPT, MOVED, ASK, TRYAGAIN, CLUSTERDOWN)
   is re-sent, with the calls after it, in order, if the calls that failed form a
   suffix of the round. If a later call of the round ran although an earlier one did
   not (a flush in mid-pipeline, then another client loading one of our scripts), the
   order is already broken: nothing is re-sent, and the batch ends in BatchOrderError
   (unless every call involved only reads).
4. A connection lost after the request was (maybe) sent leaves the calls without a
   reply run once or not at all. They are re-sent only if none of them may remove a
   mapping (`Call.removes`) and no call before them failed to run (they may have run
   ahead of it); else, or when the retry budget is spent, the batch ends in
   OutcomeUnknownError (or BatchOrderError), which says which calls are unknown. A
   connection that failed before anything was sent is retried within the budget.
   Which scripts are loaded is known per server: a new connection, or one that
   reaches another server than before, starts from none.
5. Retrying is bounded by `retry_seconds` of backoff (0 on a single server).

| reply to a Send | what the plan does |
|---|---|
| list of replies, all run | done (errors of our scripts are results: they ran) |
| NOSCRIPT on a suffix | forget what was loaded; re-send the suffix with all its scripts loaded |
| MOVED on a suffix | refresh the slot map; re-send the suffix to the owner, loading its scripts |
| ASK on a suffix | re-send the suffix to the named node (ASKING before each), loading them |
| TRYAGAIN / CLUSTERDOWN on a suffix | pause (backoff), refresh; re-send the suffix |
| any of these, not a suffix | stop: NOT_RUN in their places, BatchOrderError |
| a SCRIPT LOAD at the head failed | raise its error if nothing of the round ran; else as above |
| WAIT answered with an error (UNBLOCKED, a replica) | 0 replicas acknowledged |
| Stale: another server than `loaded` knew | build the round again (the driver emptied `loaded`) |
| NotSent(exc): connect failed | pause (backoff) and re-send; budget spent: raise exc |
| Lost(k replies, exc): connection lost | keep the k replies; re-send the rest if none of it |
|   | removes and the budget allows; else UNKNOWN there, OutcomeUnknownError |
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import queue
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.cluster
import redis.connection
import redis.sentinel
from redis.exceptions import (
    AskError,
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ClusterError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .errors import (
    NOT_RUN,
    UNKNOWN,
    BatchOrderError,
    DurabilityError,
    OutcomeUnknownError,
    from_script_error,
)
from .operations import Call
from .scripts import Script
from .telemetry import LOGGING_ONLY, Hooks, log, retry_reason

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
# ... except what no retry can heal: a wrong password, a user the ACL refuses.
UNHEALABLE = (AuthenticationError, AuthorizationError)


def healable(exc: BaseException) -> bool:
    """Whether a failed send is worth sending again (within the retry budget)."""
    return isinstance(exc, TRANSIENT) and not isinstance(exc, UNHEALABLE)


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
    """Sleeps that double from 50 ms to 500 ms, within a budget of seconds counted from
    the first failure: no sleep reaches past the budget, and none starts after it."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.started: float | None = None
        self.delay = 0.05

    def next_delay(self) -> float | None:
        """The next sleep, or None when the budget is spent."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        left = self.started + self.budget - now
        if left <= 0:
            return None
        delay, self.delay = min(self.delay, left), min(self.delay * 2, 0.5)
        return delay


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
    """Pipeline on one connection: load `loads` (script sources) in one MULTI/EXEC, so
    no flush can fall between two of them, then run `commands`. Reply with one result
    per load and per command (errors in place), or NotSent / Lost if the connection
    failed."""

    loads: list[str]
    commands: list[tuple[Any, ...]]
    node: tuple[str, int] | None  # a cluster node to send to; None: the namespace's owner
    asking: bool  # prefix each script run with ASKING (slot being imported there)


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float
    refresh: bool  # re-read the cluster's slot layout first


Step = Send | Pause


@dataclass(frozen=True, slots=True)
class NotSent:
    """The connection failed before any byte of the request was written."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class Stale:
    """Nothing was sent: the connection reached another server than the one the
    transport's `loaded` set was about (a failover, a slot that moved), so the driver
    emptied that set; the plan builds the round again, loading its scripts."""


@dataclass(frozen=True, slots=True)
class Lost:
    """The connection failed after the request was (maybe) written: `replies` are those
    that arrived, in order; the commands after them ran once or not at all."""

    replies: list[Any]
    error: BaseException


@dataclass(slots=True)
class Outcome:
    replies: list[Any]
    acknowledged: int | None  # the least WAIT answer over the rounds that wrote
    # Set when the plan stopped before every call had its reply: the error class to
    # raise (OutcomeUnknownError or BatchOrderError) and what it says.
    interrupted: type[OutcomeUnknownError] | type[BatchOrderError] | None = None
    message: str = ""


_USE_PLAN = object()  # (SyncTransport._removal_on_pool: the plan decides)

# Replies that say the call did not run here and may be sent again.
# READONLY: a primary demoted to replica refused the script (it did not run).
NOT_RUN_HERE = (NoScriptError, AskError, TryAgainError, ClusterDownError, ReadOnlyError)  # MOVED is an ASK


def send_plan(
    calls: Sequence[Call[Any]],
    keys: Sequence[str],
    durability: Durability | None,
    loaded: set[str],
    retry_seconds: float,
    hooks: Hooks = LOGGING_ONLY,
) -> Generator[Step, Any, Outcome]:
    """Decides what to send, and what to re-send, until every call has its reply or
    the plan must stop (see the rules and the table at the top of this module).

    `loaded`, kept by the transport, holds the SHAs this transport saw the server take.
    """
    outcome = Outcome([None] * len(calls), None)
    scripts = {i: call.script for i, call in enumerate(calls) if call.script is not None}
    todo = list(scripts)
    node: tuple[str, int] | None = None
    asking = False
    noscript_rounds = 0
    backoff = Backoff(retry_seconds)
    confirm = False  # a round's writes ran but its WAIT reply was lost
    retries = 0  # re-sends through failover, migration or lost connections (for hooks)

    while todo:
        if noscript_rounds >= 2:
            # The cache keeps being flushed under us: send the sources themselves.
            loads = []
            commands: list[tuple[Any, ...]] = [
                ("EVAL", scripts[i].source, len(keys), *keys, *calls[i].args) for i in todo
            ]
        else:
            needed = {scripts[i].sha: scripts[i] for i in todo}
            loads = [] if needed.keys() <= loaded else list(needed.values())
            heads = {sha: ("EVALSHA", sha, len(keys), *keys) for sha in needed}
            commands = [(*heads[scripts[i].sha], *calls[i].args) for i in todo]
        wait = durability is not None and any(calls[i].writes for i in todo)
        if wait:
            assert durability is not None
            commands += _acknowledgement(keys, durability)
        sources = [s.source for s in loads]
        answer: list[Any] | NotSent | Lost | Stale = yield Send(sources, commands, node, asking)
        if isinstance(answer, Stale):
            continue  # the driver found another server than `loaded` speaks of, and forgot it
        node, asking = None, False

        if isinstance(answer, NotSent):
            loaded.clear()  # the next connection may reach another server (a failover)
            delay = backoff.next_delay() if healable(answer.error) else None
            if delay is None:
                _stalled(hooks, retries, backoff, ok=False)
                raise answer.error
            retries += 1
            hooks.retried(retry_reason(answer.error))
            yield Pause(delay, refresh=True)
            continue
        lost: BaseException | None = None
        got: list[Any]
        if isinstance(answer, Lost):
            got, lost = answer.replies, answer.error
            loaded.clear()
        else:
            got = answer
            failed_load = next((r for r in got[: len(loads)] if isinstance(r, Exception)), None)
            ran = got[len(loads) : len(loads) + len(todo)]
            if failed_load is not None and all(isinstance(r, NoScriptError) for r in ran):
                raise failed_load  # not allowed to load (ACL), out of memory, ...: nothing ran
        if len(got) < len(loads):  # lost before EXEC answered: the calls ran once or not at all
            if not any(calls[i].removes for i in todo):
                delay = backoff.next_delay()
                if delay is not None:
                    retries += 1
                    hooks.retried(retry_reason(lost))
                    yield Pause(delay, refresh=True)
                    continue
            return _interrupted_by_loss(outcome, calls, todo, [], lost, retry_seconds)
        loaded.update(s.sha for s in loads)
        got = got[len(loads) :]
        if wait:
            acked: int | None = _acknowledged(got[len(todo) :])
            got = got[: len(todo)]
        replied, unreplied = todo[: len(got)], todo[len(got) :]
        retry: list[int] = []
        ran_late: list[int] = []  # calls that ran although an earlier one of the round did not
        refresh = pause = False
        reloading: dict[str, None] = {}  # scripts the next round loads again (NOSCRIPT), in order
        moved: BaseException | None = None  # the first reply that redirects or asks to wait
        for i, reply in zip(replied, got, strict=True):
            if isinstance(reply, NOT_RUN_HERE):
                retry.append(i)
                if isinstance(reply, NoScriptError):
                    loaded.clear()  # a flush or a failover took every script
                    reloading.setdefault(scripts[i].name)
                    continue
                if moved is None:
                    moved = reply
                if isinstance(reply, MovedError):
                    refresh = True
                    loaded.clear()  # the next round goes to another node
                elif isinstance(reply, AskError):
                    node, asking = (reply.host, int(reply.port)), True
                    loaded.clear()
                else:
                    pause = refresh = True
                continue
            outcome.replies[i] = map_error(reply) if isinstance(reply, ResponseError) else reply
            if retry:
                ran_late.append(i)
        if wait and any(calls[i].writes for i in replied if i not in retry):
            # A round in which no write took effect (all MOVED, NOSCRIPT, READONLY)
            # acknowledges nothing and needs nothing acknowledged.
            if acked is None:
                confirm = True  # the WAIT reply was lost: ask again once the calls are done
            else:
                prior = outcome.acknowledged
                outcome.acknowledged = acked if prior is None else min(prior, acked)
        if lost is not None and retry:
            ran_late += unreplied  # maybe ran, after a call of the round that did not
        if ran_late and not _reads_only(calls, [*retry, *ran_late]):
            return _interrupted_out_of_order(outcome, calls, retry, ran_late, unreplied if lost else [])
        if reloading:  # some reply of the round was NOSCRIPT
            noscript_rounds += 1
            for name in reloading:
                hooks.script_loaded(name)
        if lost is not None:
            if any(calls[i].removes for i in unreplied):
                return _interrupted_by_loss(outcome, calls, unreplied, retry, lost, retry_seconds)
            pause = refresh = True
        if moved is not None or (lost is not None and unreplied):
            retries += 1
            hooks.retried(retry_reason(moved if moved is not None else lost))
        todo = retry + unreplied
        delay = backoff.next_delay() if pause else 0.0
        if todo and (noscript_rounds > NOSCRIPT_ATTEMPTS or delay is None):
            if lost is not None:
                return _interrupted_by_loss(outcome, calls, unreplied, retry, lost, retry_seconds)
            for i in todo:
                outcome.replies[i] = ResponseError(
                    f"gave up re-sending {scripts[i].name} within {retry_seconds}s"
                )
            break
        if todo and (refresh or pause):
            yield Pause(delay or 0.0, refresh=refresh)
    _stalled(hooks, retries, backoff, ok=outcome.interrupted is None)
    if confirm and durability is not None and outcome.interrupted is None:
        # A new acknowledgement write, then WAIT: it covers every write before it.
        answer = yield Send([], _acknowledgement(keys, durability), None, False)
        again = (_acknowledged(answer) if isinstance(answer, list) else None) or 0
        prior = outcome.acknowledged
        outcome.acknowledged = again if prior is None else min(prior, again)
    return outcome


def _stalled(hooks: Hooks, retries: int, backoff: Backoff, *, ok: bool) -> None:
    if retries and backoff.started is not None:
        hooks.stalled(retries, time.monotonic() - backoff.started, ok)


def _acknowledgement(keys: Sequence[str], durability: Durability) -> list[tuple[Any, ...]]:
    """A write of our own, then WAIT. WAIT waits for this connection's last write: a call
    that changed nothing (an existing root, a repeated cleanup) would otherwise be
    acknowledged at once on servers that answer WAIT immediately for a connection that
    replicated nothing (Redis 7.2+, Valkey), though its answer rests on other clients'
    writes that may not have reached any replica. The write goes to the replication
    stream after everything the calls read, so acknowledging it acknowledges those."""
    return [("HINCRBY", keys[0], "ack", 1), ("WAIT", durability.replicas, durability.timeout_ms)]


def _acknowledged(replies: Sequence[Any]) -> int | None:
    """Replicas that acknowledged, from the replies to _acknowledgement: None if the WAIT
    reply was lost or the write was redirected; 0 if the write or WAIT failed (a demoted
    primary answers UNBLOCKED)."""
    if len(replies) < 2:
        return None
    written, count = replies[0], replies[1]
    if isinstance(written, NOT_RUN_HERE):
        return None  # the write went elsewhere (its slot moving): ask again, at the owner
    if isinstance(written, Exception) or not isinstance(count, int):
        return 0
    return count


def _reads_only(calls: Sequence[Call[Any]], indices: Sequence[int]) -> bool:
    return not any(calls[i].writes for i in indices)


def _interrupted_by_loss(
    outcome: Outcome,
    calls: Sequence[Call[Any]],
    unknown: Sequence[int],
    not_run: Sequence[int],
    error: BaseException | None,
    retry_seconds: float,
) -> Outcome:
    for i in not_run:
        outcome.replies[i] = NOT_RUN
    for i in unknown:
        outcome.replies[i] = UNKNOWN
    names = ", ".join(script.name for i in unknown if (script := calls[i].script) is not None)
    removes = any(calls[i].removes for i in unknown)
    why = (
        "it may remove a mapping, and another client may have re-created that chain since"
        if removes
        else f"re-sending for {retry_seconds:g}s did not get through"
    )
    outcome.interrupted = OutcomeUnknownError
    outcome.message = (
        f"the connection was lost ({error}) after the request was sent: {names} ran once or not at "
        f"all; not re-sent because {why}. Reads are safe to repeat: look the affected ids up, then "
        "repeat what is still needed"
    )
    return outcome


def _interrupted_out_of_order(
    outcome: Outcome,
    calls: Sequence[Call[Any]],
    not_run: Sequence[int],
    ran_late: Sequence[int],
    unknown: Sequence[int],
) -> Outcome:
    for i in not_run:
        outcome.replies[i] = NOT_RUN
    for i in unknown:
        outcome.replies[i] = UNKNOWN
    first = calls[not_run[0]].script
    outcome.interrupted = BatchOrderError
    outcome.message = (
        f"{first.name if first else 'a call'} (operation {not_run[0]} of the round) could not run (its "
        f"script was flushed or its slot moved) while {len(ran_late)} later operation(s) of the same "
        "round ran; nothing was re-sent out of order. Reads are safe to repeat: decide from the "
        "current state what to send again"
    )
    return outcome


def check_durability(outcome: Outcome, durability: Durability | None, results: list[Any]) -> None:
    if durability is None or outcome.acknowledged is None:
        return
    if outcome.acknowledged < durability.replicas:
        log.warning(
            "durability shortfall: %d of wait_replicas=%d replica(s) acknowledged within %d ms",
            outcome.acknowledged,
            durability.replicas,
            durability.timeout_ms,
        )
        raise DurabilityError(
            f"wait_replicas={durability.replicas} but {outcome.acknowledged} replica(s) acknowledged "
            f"within {durability.timeout_ms} ms; the write is on the primary and may be lost if it "
            "fails now; retrying the call is safe",
            outcome.acknowledged,
            results,
        )


# ---------------------------------------------------------------- sync


def run_call(
    client: Any,
    keys: Sequence[str],
    call: Call[T],
    retry_seconds: float = 0.0,
    hooks: Hooks = LOGGING_ONLY,
    head: Sequence[Any] | None = None,
) -> T:
    """Send one Call; through a failover, retry for up to `retry_seconds` (idempotent).
    `head`: the command's first arguments up to the script's own (see `evalsha_head`)."""
    try:
        return run_call_once(client, keys, call, hooks, head)
    except TRANSIENT as exc:
        if not retry_seconds or not healable(exc):
            raise
        first = exc
    return _retry_call(client, keys, call, retry_seconds, hooks, first, head)


def _retry_call(
    client: Any,
    keys: Sequence[str],
    call: Call[T],
    retry_seconds: float,
    hooks: Hooks,
    first: BaseException,
    head: Sequence[Any] | None,
) -> T:
    """run_call after its first attempt failed with `first` (the budget counts from it)."""
    backoff = Backoff(retry_seconds)
    retries = 0
    exc: BaseException = first
    while True:
        delay = backoff.next_delay() if healable(exc) else None
        if delay is None:
            _stalled(hooks, retries, backoff, ok=False)
            raise exc
        retries += 1
        hooks.retried(retry_reason(exc))
        time.sleep(delay)
        try:
            result = run_call_once(client, keys, call, hooks, head)
        except TRANSIENT as again:
            exc = again
        else:
            _stalled(hooks, retries, backoff, ok=True)
            return result


def load_here(client: Any, keys: Sequence[str], s: Script) -> None:
    """SCRIPT LOAD on the server that runs the namespace's scripts. On a cluster that is
    the node owning its slot only: redis-py's script_load goes to every primary, and
    fails while any of them is down."""
    if isinstance(client, redis.cluster.RedisCluster):
        cluster: Any = client  # redis-py's cluster client is untyped
        cluster.execute_command("SCRIPT", "LOAD", s.source, target_nodes=cluster.get_node_from_key(keys[0]))
    else:
        client.script_load(s.source)


async def load_here_async(client: Any, keys: Sequence[str], s: Script) -> None:
    """As load_here, awaited."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        node = client.get_node_from_key(keys[0])
        await client.execute_command("SCRIPT", "LOAD", s.source, target_nodes=node)
    else:
        await client.script_load(s.source)


def run_call_once(
    client: Any,
    keys: Sequence[str],
    call: Call[T],
    hooks: Hooks = LOGGING_ONLY,
    head: Sequence[Any] | None = None,
    send: Callable[[tuple[Any, ...]], Any] | None = None,
) -> T:
    """Send one Call with EVALSHA; load the script and retry once on NOSCRIPT.
    `send(command)`: how the EVALSHA goes (default: the client's execute_command)."""
    s = call.script
    if s is None:
        return call.decode(None)
    try:
        try:
            if head is None:
                head = ("EVALSHA", s.sha, len(keys), *keys)
            command = (*head, *call.args)
            reply = client.execute_command(*command) if send is None else send(command)
        except NoScriptError:
            hooks.script_loaded(s.name)
            load_here(client, keys, s)
            try:
                reply = client.execute_command("EVALSHA", s.sha, len(keys), *keys, *call.args)
            except NoScriptError:
                # Flushed again between our load and our call: send the source itself.
                reply = client.execute_command("EVAL", s.source, len(keys), *keys, *call.args)
    except ResponseError as exc:
        raise map_error(exc) from None
    return call.decode(reply)


def sends_on_its_pool(client: Any) -> bool:
    """Whether a single call may go on a connection of the client's pool directly
    (send_on_pool) instead of through execute_command: a standalone or Sentinel client of
    redis-py's own, whose execute_command nothing overrides or wraps (the embedded
    backend's has a path of its own; an instrumentation that wraps it must see the calls),
    and that is not a single-connection client."""
    if not isinstance(client, redis.Redis) or getattr(client, "connection", None) is not None:
        return False
    pool = getattr(client, "connection_pool", None)
    execute = type(client).execute_command
    return (
        pool is not None
        and callable(getattr(pool, "get_connection", None))
        and getattr(execute, "__module__", None) == "redis.client"
        and not hasattr(execute, "__wrapped__")
    )


def send_on_pool(client: Any, command: tuple[Any, ...]) -> Any:
    """One command on a connection of the client's pool, as redis-py's execute_command
    sends it (the connection's retry policy; a connection that failed is dropped before
    the next attempt) without its per-command bookkeeping: about a fifth of a loopback
    round trip on a small VM (docs/design.md, "The client's share of a call"). Batches
    are sent this way already (SyncTransport._send)."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        return conn.retry.call_with_retry(
            lambda: _send_and_read(conn, command), lambda _error: conn.disconnect()
        )
    finally:
        try:
            reconnect = getattr(conn, "should_reconnect", None)
            if reconnect is not None and reconnect():  # (a server's maintenance notice)
                conn.disconnect()
                conn.connect()
        finally:
            pool.release(conn)


def _send_and_read(conn: Any, command: tuple[Any, ...]) -> Any:
    conn.send_packed_command(_pack(conn, [command]))
    return conn.read_response()


def connection_limit(client: Any) -> int | None:
    """How many connections the client's pool lends at once (per node on a cluster),
    or None when it sets no practical bound.

    redis-py's pools raise (MaxConnectionsError, "Too many connections") rather than
    wait when they are exhausted; the transports hold calls beyond this number back
    until a call ends instead, so thousands of concurrent calls wait, not fail.
    """
    limit: object = None
    pool = getattr(client, "connection_pool", None)
    if pool is None:  # a cluster client: what its nodes' pools are given, or have
        given = getattr(getattr(client, "nodes_manager", None), "connection_kwargs", {})
        limit = given.get("max_connections")
        get_node = getattr(client, "get_default_node", None)
        node = get_node() if limit is None and get_node is not None else None
        pool = getattr(getattr(node, "redis_connection", None), "connection_pool", None)
    if pool is not None:
        limit = getattr(pool, "max_connections", None)
    if isinstance(limit, int) and 0 < limit < 2**20:
        return limit
    return None


def _ascii_compatible(client: Any) -> bool:
    """Whether the client writes ASCII text as ASCII bytes (every encoding redis-py users
    pick does; UTF-16 would not), so the keys and SHA may go as bytes made once."""
    try:
        encoded = client.get_encoder().encode("EVALSHA threadreg:{ns}:meta 0123456789abcdef")
    except Exception:
        return False
    return bool(encoded == b"EVALSHA threadreg:{ns}:meta 0123456789abcdef")


def evalsha_head(s: Script, keys: Sequence[str], as_bytes: bool) -> tuple[Any, ...]:
    """``EVALSHA sha numkeys *keys``: what every run of `s` starts with. As bytes when the
    client's encoding writes ASCII as ASCII (then the client encodes only the script's own
    arguments per call; the command name stays str, which clients dispatch on)."""
    if not as_bytes:
        return ("EVALSHA", s.sha, len(keys), *keys)
    return (
        "EVALSHA",
        s.sha.encode("ascii"),
        str(len(keys)).encode("ascii"),
        *(k.encode("ascii") for k in keys),
    )


class TransportBase:
    """What both transports hold: the client, the namespace's keys, the durability and
    retry settings, which scripts the server is known to have, and how many calls may
    be in flight at once (see connection_limit)."""

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
        self.loaded_server: object = None  # ... and which server that was
        self.limit = connection_limit(client)
        self.hooks: Hooks = LOGGING_ONLY  # told of retries and reloads (telemetry.attach sets its own)
        self._ascii_wire = _ascii_compatible(client)
        self._heads: dict[str, tuple[Any, ...]] = {}  # script SHA -> evalsha_head

    def head(self, s: Script) -> tuple[Any, ...]:
        """The fast path's ``EVALSHA sha numkeys *keys`` for `s`, made once per script."""
        head = self._heads.get(s.sha)
        if head is None:
            head = self._heads[s.sha] = evalsha_head(s, self.keys, self._ascii_wire)
        return head

    def same_server(self, server: object, step: Send) -> bool:
        """Whether `loaded` speaks of `server`; if not, it is forgotten, and a Send that
        counted on it must not go (the plan then loads what it runs)."""
        if server == self.loaded_server:
            return True
        self.loaded.clear()
        self.loaded_server = server
        return bool(step.loads) or not any(c[0] == "EVALSHA" for c in step.commands)

    def plan(self, calls: Sequence[Call[Any]]) -> Generator[Step, Any, Outcome]:
        return send_plan(calls, self.keys, self.durability, self.loaded, self.retry_seconds, self.hooks)

    def planned(self, call: Call[Any]) -> bool:
        """Whether a single call goes through the plan rather than the fast path: a
        removal (never re-sent blindly after a lost reply) or an acknowledged write."""
        return call.removes or (self.durability is not None and call.writes)

    def single_result(self, call: Call[T], outcome: Outcome) -> T:
        """The result of a single call sent through the plan."""
        if outcome.interrupted is not None:
            raise outcome.interrupted(outcome.message, outcome.replies, (0,))
        reply = outcome.replies[0]
        if isinstance(reply, Exception):
            raise reply
        result = call.decode(reply)
        check_durability(outcome, self.durability, [result])
        return result


class SyncTransport(TransportBase):
    """Sends Calls for one registry: its client, its keys, its durability setting."""

    cluster_class = redis.cluster.RedisCluster

    def __init__(
        self,
        client: Any,
        keys: Sequence[str],
        durability: Durability | None,
        retry_seconds: float | None = None,
    ) -> None:
        super().__init__(client, keys, durability, retry_seconds)
        # How a single call's EVALSHA goes (None: the client's execute_command).
        self._send_one: Callable[[tuple[Any, ...]], Any] | None = (
            functools.partial(send_on_pool, client) if sends_on_its_pool(client) else None
        )
        # One token per connection the pool lends: a call takes one, or waits for one.
        self._slots: queue.SimpleQueue[None] | None = None
        if self.limit:
            self._slots = queue.SimpleQueue()
            for _ in range(self.limit):
                self._slots.put(None)

    def run(self, call: Call[T]) -> T:
        s = call.script
        if s is None:
            return call.decode(None)  # known without asking (a read with a malformed id)
        slots = self._slots
        if slots is not None:
            slots.get()
        try:
            head = self._heads.get(s.sha) or self.head(s)
            if call.removes or (call.writes and self.durability is not None):  # self.planned(call)
                if self._send_one is not None and self.durability is None and s.sha in self.loaded:
                    result = self._removal_on_pool(call, head)
                    if result is not _USE_PLAN:
                        return result  # type: ignore[no-any-return]
                return self.single_result(call, self._drive(self.plan([call])))
            try:  # run_call, its first attempt inlined
                return run_call_once(self.client, self.keys, call, self.hooks, head, self._send_one)
            except TRANSIENT as exc:
                if not self.retry_seconds or not healable(exc):
                    raise
                first = exc
            return _retry_call(self.client, self.keys, call, self.retry_seconds, self.hooks, first, head)
        finally:
            if slots is not None:
                slots.put(None)

    def _removal_on_pool(self, call: Call[T], head: tuple[Any, ...]) -> Any:
        """A single call that may remove, sent as the plan's first round would send it
        (one Send through _send) but judged here, without the plan's machinery (about
        16 µs of a prune_for_response on the VM here). Only for a script the plan saw
        this server take (`loaded`), so that a lost reply means what it means to the
        plan: the call ran once or not at all, OutcomeUnknownError, never re-sent.
        _USE_PLAN where the plan must decide: no connection, another server (Stale), or
        a reply saying the script did not run here (NOSCRIPT, a redirection, READONLY)."""
        answer = self._send(Send([], [(*head, *call.args)], None, False))
        if isinstance(answer, Lost):
            lost = _interrupted_by_loss(
                Outcome([None], None), [call], [0], [], answer.error, self.retry_seconds
            )
            return self.single_result(call, lost)
        if not isinstance(answer, list) or isinstance(answer[0], NOT_RUN_HERE):
            return _USE_PLAN
        reply = answer[0]
        if isinstance(reply, ResponseError):
            raise map_error(reply)
        return call.decode(reply)

    def send_many(self, calls: Sequence[Call[Any]]) -> Outcome:
        slots = self._slots
        if slots is not None:
            slots.get()
        try:
            return self._drive(self.plan(calls))
        finally:
            if slots is not None:
                slots.put(None)

    def _drive(self, plan: Generator[Step, Any, Outcome]) -> Outcome:
        try:
            step = next(plan)
            while True:
                if isinstance(step, Send):
                    step = plan.send(self._send(step))
                else:
                    if step.refresh and self.cluster:
                        with contextlib.suppress(*TRANSIENT):  # the next send finds out
                            self.client.nodes_manager.initialize()
                    time.sleep(step.seconds)
                    step = plan.send(None)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome

    def _send(self, step: Send) -> list[Any] | NotSent | Lost | Stale:
        """Writes the pipeline on a connection of its own and reads the replies one by
        one, so a lost connection tells how far it got (redis-py's pipeline would send
        the whole pipeline again instead)."""
        try:
            pool, server = self._pool(step.node)
            conn = pool.get_connection()
        except TRANSIENT as exc:
            return NotSent(exc)
        if not self.same_server(server or _address(conn), step):
            pool.release(conn)
            return Stale()
        commands = _packed(step)
        replies: list[Any] = []
        try:
            conn.send_packed_command(_pack(conn, commands))
            read = _reader(conn)
            demoted = False
            for _ in commands:
                try:
                    replies.append(read())
                except ResponseError as exc:
                    replies.append(exc)
                    demoted = demoted or isinstance(exc, ReadOnlyError)
            if demoted:
                conn.disconnect()  # a demoted primary: the next connection finds the new one
        except TRANSIENT as exc:
            conn.disconnect()
            return Lost(_unpacked(step, replies), exc)
        except BaseException:
            conn.disconnect()  # half-read replies must not reach the next user of the connection
            raise
        finally:
            pool.release(conn)
        return _unpacked(step, replies)

    def _pool(self, address: tuple[str, int] | None) -> tuple[Any, str | None]:
        """The connection pool to send on, and the cluster node's name (None elsewhere)."""
        if not self.cluster:
            return self.client.connection_pool, None
        if address is None:
            target = self.client.get_node_from_key(self.keys[0])
        else:
            target = self.client.get_node(host=address[0], port=address[1])
            if target is None:
                raise ClusterDownError(f"node {address} not known yet")
        return self.client.get_redis_connection(target).connection_pool, target.name


def _reader(conn: Any) -> Any:
    """How to read one reply. A Sentinel-managed connection turns READONLY into a
    ConnectionError after dropping itself, which would make a script that did not run
    look like a lost reply; read past that, and let the plan see READONLY."""
    if isinstance(conn, redis.sentinel.SentinelManagedConnection):
        return functools.partial(redis.connection.AbstractConnection.read_response, conn)
    return conn.read_response


def _reader_async(conn: Any) -> Any:
    """As _reader, for asyncio connections."""
    if isinstance(conn, redis.asyncio.sentinel.SentinelManagedConnection):
        return functools.partial(redis.asyncio.connection.AbstractConnection.read_response, conn)
    return conn.read_response


async def _read_replies_async(conn: Any, count: int, replies: list[Any]) -> bool:
    """Reads `count` replies into `replies` (an error reply as its exception); returns
    whether one was READONLY (a demoted primary).

    redis-py bounds each read by the connection's socket_timeout with a timeout context
    of its own, which costs more than the read of a buffered reply: a batch of 100
    spent most of its client time there. A batch's replies are read under one
    deadline instead, moved on as replies arrive: a read never times out sooner than
    socket_timeout after the last reply, nor later than 1.5 times that. A timeout is
    redis-py's TimeoutError, as it would have been."""
    read = _reader_async(conn)
    timeout = getattr(conn, "socket_timeout", None)
    demoted = False

    async def take() -> None:
        nonlocal demoted
        try:
            replies.append(await read())
        except ResponseError as exc:
            replies.append(exc)
            demoted = demoted or isinstance(exc, ReadOnlyError)

    if count < 2 or timeout is None:
        for _ in range(count):
            await take()
        return demoted
    loop = asyncio.get_running_loop()
    conn.socket_timeout = None  # (the deadline below bounds these reads)
    try:
        async with asyncio.timeout_at(loop.time() + 1.5 * timeout) as deadline:
            for _ in range(count):
                await take()
                now = loop.time()
                when = deadline.when()
                if when is not None and when - now < timeout:
                    deadline.reschedule(now + 1.5 * timeout)
    except TimeoutError:
        raise RedisTimeoutError(f"Timeout reading from {_address(conn)}") from None
    finally:
        conn.socket_timeout = timeout
    return demoted


def _address(conn: Any) -> tuple[Any, ...]:
    """Which server a connection reached (a Sentinel-managed one follows the primary)."""
    return (getattr(conn, "host", None), getattr(conn, "port", None), getattr(conn, "path", None))


def _packed(step: Send) -> list[tuple[Any, ...]]:
    """The wire commands of a Send: loads in MULTI/EXEC, ASKING before each script run."""
    if not step.loads and not step.asking:
        return step.commands  # the steady state: the commands themselves
    out: list[tuple[Any, ...]] = []
    if step.loads:
        out += [("MULTI",), *(("SCRIPT", "LOAD", source) for source in step.loads), ("EXEC",)]
    for command in step.commands:
        if step.asking and command[0] in KEYED:
            out.append(("ASKING",))
        out.append(command)
    return out


KEYED = ("EVALSHA", "EVAL", "HINCRBY")  # the commands of a Send that name the namespace's keys

_hiredis_pack: Any = None
with contextlib.suppress(ImportError):  # hiredis is optional
    from hiredis import pack_command as _hiredis_pack

# redis-py's own packers: a connection class that keeps them packs the same bytes as hiredis
_STOCK_PACKERS = (
    (redis.connection.AbstractConnection.pack_commands, redis.connection.AbstractConnection.pack_command),
    (
        redis.asyncio.connection.AbstractConnection.pack_commands,
        redis.asyncio.connection.AbstractConnection.pack_command,
    ),
)
_fast_packing: dict[tuple[type, str, str], bool] = {}


def _pack(conn: Any, commands: list[tuple[Any, ...]]) -> Any:
    """The RESP of a Send's commands, as ``conn.pack_commands`` would make it. redis-py
    encodes every argument in Python (about 8 µs for a script run); hiredis's packer
    does it in C. Used only where it gives the same bytes: a connection class that
    keeps redis-py's packing (the embedded backend's does not: it skips RESP), writing
    UTF-8, strictly, as hiredis does."""
    encoder = getattr(conn, "encoder", None)
    key = (type(conn), getattr(encoder, "encoding", ""), getattr(encoder, "encoding_errors", ""))
    fast = _fast_packing.get(key)
    if fast is None:
        fast = _fast_packing[key] = _hiredis_packs_alike(*key)
    if not fast:
        return conn.pack_commands(commands)
    return [b"".join(map(_hiredis_pack, commands))]


def _hiredis_packs_alike(cls: Any, encoding: str, errors: str) -> bool:
    """Whether hiredis packs what connections of `cls` with this encoding would."""
    if _hiredis_pack is None or (cls.pack_commands, cls.pack_command) not in _STOCK_PACKERS:
        return False
    try:
        return codecs.lookup(encoding).name == "utf-8" and errors == "strict"
    except LookupError:
        return False


def _unpacked(step: Send, raw: list[Any]) -> list[Any]:
    """One reply per load and per command of a Send, from the wire replies that came."""
    if not step.loads and not step.asking:
        return raw[: len(step.commands)]  # one wire command per command
    out: list[Any] = []
    pos = 0
    if step.loads:
        pos = len(step.loads) + 2
        if len(raw) < pos:
            return out  # lost before EXEC answered: not one script is known loaded
        loaded = raw[pos - 1]
        if isinstance(loaded, list) and len(loaded) == len(step.loads):
            out += loaded
        else:  # EXECABORT (a load refused when queued), or a refused MULTI
            error = (
                loaded if isinstance(loaded, Exception) else ResponseError(f"SCRIPT LOAD failed: {loaded!r}")
            )
            out += [error] * len(step.loads)
    for command in step.commands:
        if step.asking and command[0] in KEYED:
            pos += 1  # ASKING's own +OK
        if pos >= len(raw):
            break
        out.append(raw[pos])
        pos += 1
    return out


# ---------------------------------------------------------------- async


async def run_call_async(
    client: Any,
    keys: Sequence[str],
    call: Call[T],
    retry_seconds: float = 0.0,
    hooks: Hooks = LOGGING_ONLY,
    head: Sequence[Any] | None = None,
) -> T:
    """Await one Call; through a failover, retry for up to `retry_seconds` (idempotent)."""
    try:
        return await run_call_once_async(client, keys, call, hooks, head)
    except TRANSIENT as exc:
        if not retry_seconds or not healable(exc):
            raise
        first = exc
    return await _retry_call_async(client, keys, call, retry_seconds, hooks, first, head)


async def _retry_call_async(
    client: Any,
    keys: Sequence[str],
    call: Call[T],
    retry_seconds: float,
    hooks: Hooks,
    first: BaseException,
    head: Sequence[Any] | None,
) -> T:
    """As _retry_call, awaited."""
    backoff = Backoff(retry_seconds)
    retries = 0
    exc: BaseException = first
    while True:
        delay = backoff.next_delay() if healable(exc) else None
        if delay is None:
            _stalled(hooks, retries, backoff, ok=False)
            raise exc
        retries += 1
        hooks.retried(retry_reason(exc))
        await asyncio.sleep(delay)
        try:
            result = await run_call_once_async(client, keys, call, hooks, head)
        except TRANSIENT as again:
            exc = again
        else:
            _stalled(hooks, retries, backoff, ok=True)
            return result


async def run_call_once_async(
    client: Any,
    keys: Sequence[str],
    call: Call[T],
    hooks: Hooks = LOGGING_ONLY,
    head: Sequence[Any] | None = None,
) -> T:
    """Await one Call with EVALSHA; load the script and retry once on NOSCRIPT."""
    s = call.script
    if s is None:
        return call.decode(None)
    try:
        try:
            if head is None:
                head = ("EVALSHA", s.sha, len(keys), *keys)
            reply = await client.execute_command(*head, *call.args)
        except NoScriptError:
            hooks.script_loaded(s.name)
            await load_here_async(client, keys, s)
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
        self._slots = asyncio.Semaphore(self.limit) if self.limit else None

    async def run(self, call: Call[T]) -> T:
        s = call.script
        if s is None:
            return call.decode(None)  # known without asking (a read with a malformed id)
        slots = self._slots
        if slots is not None:
            await slots.acquire()
        try:
            if call.removes or (call.writes and self.durability is not None):  # self.planned(call)
                return self.single_result(call, await self._drive(self.plan([call])))
            head = self._heads.get(s.sha) or self.head(s)
            try:  # run_call_async, its first attempt inlined
                return await run_call_once_async(self.client, self.keys, call, self.hooks, head)
            except TRANSIENT as exc:
                if not self.retry_seconds or not healable(exc):
                    raise
                first = exc
            return await _retry_call_async(
                self.client, self.keys, call, self.retry_seconds, self.hooks, first, head
            )
        finally:
            if slots is not None:
                slots.release()

    async def send_many(self, calls: Sequence[Call[Any]]) -> Outcome:
        slots = self._slots
        if slots is not None:
            await slots.acquire()
        try:
            return await self._drive(self.plan(calls))
        finally:
            if slots is not None:
                slots.release()

    async def _drive(self, plan: Generator[Step, Any, Outcome]) -> Outcome:
        try:
            step = next(plan)
            while True:
                if isinstance(step, Send):
                    step = plan.send(await self._send(step))
                else:
                    if step.refresh and self.cluster:
                        with contextlib.suppress(*TRANSIENT):  # the next send finds out
                            await self.client.nodes_manager.initialize()
                    await asyncio.sleep(step.seconds)
                    step = plan.send(None)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome

    async def _send(self, step: Send) -> list[Any] | NotSent | Lost | Stale:
        """As SyncTransport._send, awaited."""
        try:
            conn, release = await self._acquire(step.node)
        except TRANSIENT as exc:
            return NotSent(exc)
        replies: list[Any] = []
        try:
            if not self.same_server(_address(conn), step):
                return Stale()
            commands = _packed(step)
            await conn.send_packed_command(_pack(conn, commands))
            demoted = await _read_replies_async(conn, len(commands), replies)
            if demoted:
                await conn.disconnect()  # a demoted primary: the next connection finds the new one
        except TRANSIENT as exc:
            await conn.disconnect()
            return Lost(_unpacked(step, replies), exc)
        except BaseException:
            await conn.disconnect()  # cancelled mid-read: the connection's replies are not ours
            raise
        finally:
            await release(conn)
        return _unpacked(step, replies)

    async def _acquire(self, address: tuple[str, int] | None) -> tuple[Any, Any]:
        """A connected connection to send on, and the coroutine that gives it back.

        On a cluster it is one of the node's own connections (ClusterNode keeps them,
        within the cluster client's max_connections, and the cluster client closes them).
        """
        if not self.cluster:
            pool = self.client.connection_pool
            return await pool.get_connection(), pool.release
        if address is None:
            node = self.client.get_node_from_key(self.keys[0])
        else:
            node = self.client.get_node(host=address[0], port=address[1])
            if node is None:
                raise ClusterDownError(f"node {address} not known yet")
        conn = node.acquire_connection()
        try:
            await conn.connect()
        except BaseException:
            node.release(conn)
            raise

        async def release(c: Any) -> None:
            node.release(c)

        return conn, release
