"""ThreadRegistry: the synchronous registry on a redis-py client."""

from __future__ import annotations

from typing import TypeVar

import redis
import redis.cluster
import redis.sentinel
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .base import ClientKinds, RegistryBase
from .batch import Batch
from .check import CheckResult, run_check
from .operations import Call, Program, Route, ThreadInfo, as_dump
from .sentinel import PrimaryConnection
from .stats import Stats, collect, run_sync
from .transport import SyncTransport
from .validation import Chain, ThreadId

T = TypeVar("T")


class ThreadRegistry(RegistryBase):
    """Atomic thread registry shared through Redis: chain <-> thread id, with TTL.

    Every method is one Lua script run with EVALSHA (one round trip), so both
    directions change together for every process and host. Thread ids may be given
    as str, ``uuid.UUID`` or bytes holding a UUID: the same id. See the README.
    """

    _transport_class = SyncTransport
    _clients = ClientKinds(
        redis.Redis,
        redis.cluster.RedisCluster,
        redis.sentinel.Sentinel,
        Retry,
        ExponentialBackoff,
        PrimaryConnection,
    )
    _transport: SyncTransport

    # ------------------------------------------------------------ plumbing

    def _run(self, call: Call[T]) -> T:
        return self._transport.run(call)

    def _drive(self, program: Program[T]) -> T:
        try:
            call = next(program)
            while True:
                call = program.send(self._run(call))
        except StopIteration as done:
            result: T = done.value
            return result

    def batch(self) -> Batch:
        """A batch: queue operations on it, then ``execute()`` sends them in one round trip."""
        return Batch(self)

    def ping(self) -> bool:
        """Ask the server (one round trip). True when it answers; redis-py's
        ConnectionError (or TimeoutError) when it cannot be reached."""
        return bool(self._client.ping())

    def close(self) -> None:
        """Close the client's connections (and those to the Sentinels, if from_sentinel made them)."""
        self._client.close()
        for sentinel in getattr(self._sentinel, "sentinels", ()):
            sentinel.close()

    def __enter__(self) -> ThreadRegistry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------ operations

    def initialize_root(self, organism_name: str = "organism") -> str:
        """Get or create the namespace's root, chain ``system.<organism_name>``.

        Every process and host gets the same id; the root never expires. Idempotent.

        Args:
            organism_name: one hop (taken verbatim, dots allowed).

        Returns:
            The root's thread id (also kept in ``root_uuid``).

        Raises:
            InvalidHopError: a bad organism name.
            RootConflictError: the namespace's live root is for another organism.
        """
        return self._transport.run(self._ops.initialize_root(organism_name))

    def get_or_create(self, chain: Chain) -> str:
        """The id of a chain, bound now if it has none; touches it and its ancestors.

        Args:
            chain: a dotted str (split on ``.``) or a sequence of hops (taken verbatim).

        Returns:
            The thread id: the same one for every caller of the same chain.

        Raises:
            InvalidHopError: a bad hop, or an empty chain or one over 32 hops or 2,048 bytes.
        """
        return self._transport.run(self._ops.get_or_create(chain))

    def lookup(self, thread_id: ThreadId) -> str | None:
        """The chain of a thread, its hops joined with ``.``; never writes.

        Returns:
            The dotted chain, or None for an unknown, expired or malformed id.

        Raises:
            TypeError: an id that is not a str, uuid.UUID or bytes.
        """
        return self._transport.run(self._ops.lookup(thread_id))

    def lookup_hops(self, thread_id: ThreadId) -> tuple[str, ...] | None:
        """The hops of a thread's chain, exactly as pushed; never writes.

        Returns:
            The tuple of hops, or None for an unknown, expired or malformed id.

        Raises:
            TypeError: an id that is not a str, uuid.UUID or bytes.
        """
        return self._transport.run(self._ops.lookup_hops(thread_id))

    def extend_chain(self, current_uuid: ThreadId, next_hop: str) -> str:
        """The id of the chain of `current_uuid` plus `next_hop`, bound now if new.

        An unknown or expired `current_uuid` gives the one-hop chain ``[next_hop]``,
        or raises UnknownThreadError in strict mode.

        Args:
            current_uuid: the thread being forwarded.
            next_hop: one hop, taken verbatim (dots allowed).

        Returns:
            The extended chain's thread id.

        Raises:
            InvalidHopError: a bad hop, or a chain that would exceed 32 hops or 2,048 bytes.
            UnknownThreadError: strict mode, and `current_uuid` names no live thread.
            TypeError: an id that is not a str, uuid.UUID or bytes.
        """
        return self._transport.run(self._ops.extend_chain(current_uuid, next_hop))

    def prune_for_response(self, thread_id: ThreadId, *, drop: bool = False) -> Route:
        """Where the answer to `thread_id` goes: its chain without the last hop.

        The shorter chain is bound now if it had none, and touched. A one-hop chain has
        no caller: its mapping is removed and the route is ``Route(None, None)``.

        Args:
            thread_id: the thread being answered.
            drop: also remove the answered thread (both directions) in the same script,
                as ``cleanup`` would: for a thread that gets one answer only.

        Returns:
            ``Route(target, thread_id)``: the hop that asked and its thread (unpacks as
            a pair); ``Route(None, None)`` for an unknown id or a one-hop chain.

        Raises:
            UnknownThreadError: strict mode, and `thread_id` names no live thread.
            OutcomeUnknownError: the reply was lost; it ran once or not at all.
            TypeError: an id that is not a str, uuid.UUID or bytes.
        """
        return self._transport.run(self._ops.prune_for_response(thread_id, drop))

    def start_chain(self, initiator: str, target: str) -> str:
        """Get or create the two-hop chain ``[initiator, target]``.

        Raises:
            InvalidHopError: a bad hop.
        """
        return self._transport.run(self._ops.start_chain(initiator, target))

    def register_thread(self, thread_id: ThreadId, initiator: str, target: str) -> str:
        """Bind an id assigned outside to root + ``[initiator, target]``.

        Without a root the chain is ``[initiator, target]``. The same id for the same
        chain again returns it; a chain that already has another id returns that id
        and binds nothing.

        Returns:
            The id now bound to the chain.

        Raises:
            InvalidThreadIdError: `thread_id` is not a UUID.
            InvalidHopError: a bad hop.
            ThreadIdConflictError: `thread_id` is bound to another chain.
        """
        return self._transport.run(self._ops.register_thread(thread_id, initiator, target))

    def initialize_table_root(self, table: str, organism: str) -> str:
        """Get or create the root of a table, chain ``[table, organism]``; never expires.

        Raises:
            InvalidHopError: a bad table or organism name.
            RootConflictError: the table's live root is for another organism.
        """
        return self._transport.run(self._ops.initialize_table_root(table, organism))

    def get_table_root(self, table: str) -> str | None:
        """The id of a table's root, or None if the table has none; never writes.

        Raises:
            InvalidHopError: a bad table name.
        """
        return self._transport.run(self._ops.get_table_root(table))

    def get_table_for_thread(self, thread_id: ThreadId) -> str | None:
        """The first hop of the thread's chain when it names a table root, else None.

        Raises:
            TypeError: an id that is not a str, uuid.UUID or bytes.
        """
        return self._transport.run(self._ops.get_table_for_thread(thread_id))

    def cleanup(self, thread_id: ThreadId) -> None:
        """Remove one mapping, both directions (descendants keep theirs).

        An unknown id is a no-op. Only safe once no other request uses the thread: see
        the README's identity model.

        Raises:
            OutcomeUnknownError: the reply was lost; it ran once or not at all.
            TypeError: an id that is not a str, uuid.UUID or bytes.
        """
        self._transport.run(self._ops.cleanup(thread_id))

    def clear(self) -> None:
        """Remove this namespace, and only it (UNLINK); resets this instance's root.

        Raises:
            OutcomeUnknownError: the reply was lost; it ran once or not at all.
        """
        self._transport.run(self._ops.clear())

    def gc(self, limit: int = 1000) -> int:
        """Reclaim expired mappings now, in bounded steps, over one pass at most.

        Args:
            limit: stop once this many were reclaimed (an int >= 1).

        Returns:
            How many mappings were reclaimed.

        Raises:
            InvalidConfigError: a bad limit.
        """
        return self._drive(self._ops.gc(limit))

    def threads(self) -> list[ThreadInfo]:
        """Every live mapping with its hops and deadline, read in bounded pages.

        Returns:
            ThreadInfo rows: expiring threads first, then permanent ones.
        """
        return self._drive(self._ops.iter_threads())

    def debug_dump(self) -> dict[str, str]:
        """``{thread id: dotted chain}`` of every live mapping of this namespace."""
        return as_dump(self.threads())

    def check(self, repair: bool = False) -> CheckResult:
        """Verify every invariant of this namespace in bounded pages; with `repair`, mend
        what can be mended without guessing, one script per step (see CheckResult)."""
        return self._drive(run_check(self._ops, repair))

    def stats(self) -> Stats:
        """Counts, memory and server facts of this namespace, read in bounded steps (see Stats)."""
        return run_sync(self, collect(self._ops))
