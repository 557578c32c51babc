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
from .operations import Call, Program, ThreadInfo, as_dump
from .stats import Stats, collect, run_sync
from .transport import SyncTransport
from .validation import Chain, ThreadId

T = TypeVar("T")


class ThreadRegistry(RegistryBase):
    """Atomic thread registry shared through Redis: chain <-> thread id, with TTL.

    Every method is one Lua script run with EVALSHA (one round trip), so both
    directions change together for every process and host. See SPEC and README.
    """

    _transport_class = SyncTransport
    _clients = ClientKinds(
        redis.Redis, redis.cluster.RedisCluster, redis.sentinel.Sentinel, Retry, ExponentialBackoff
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
        return self._run(self._ops.initialize_root(organism_name))

    def get_or_create(self, chain: Chain) -> str:
        return self._run(self._ops.get_or_create(chain))

    def lookup(self, thread_id: ThreadId) -> str | None:
        return self._run(self._ops.lookup(thread_id))

    def lookup_hops(self, thread_id: ThreadId) -> tuple[str, ...] | None:
        return self._run(self._ops.lookup_hops(thread_id))

    def extend_chain(self, current_uuid: ThreadId, next_hop: str) -> str:
        return self._run(self._ops.extend_chain(current_uuid, next_hop))

    def prune_for_response(self, thread_id: ThreadId) -> tuple[str | None, str | None]:
        return self._run(self._ops.prune_for_response(thread_id))

    def start_chain(self, initiator: str, target: str) -> str:
        return self._run(self._ops.start_chain(initiator, target))

    def register_thread(self, thread_id: ThreadId, initiator: str, target: str) -> str:
        return self._run(self._ops.register_thread(thread_id, initiator, target))

    def initialize_table_root(self, table: str, organism: str) -> str:
        return self._run(self._ops.initialize_table_root(table, organism))

    def get_table_root(self, table: str) -> str | None:
        return self._run(self._ops.get_table_root(table))

    def get_table_for_thread(self, thread_id: ThreadId) -> str | None:
        return self._run(self._ops.get_table_for_thread(thread_id))

    def cleanup(self, thread_id: ThreadId) -> None:
        self._run(self._ops.cleanup(thread_id))

    def clear(self) -> None:
        self._run(self._ops.clear())

    def gc(self, limit: int = 1000) -> int:
        """Reclaim expired mappings now, in bounded steps; returns how many."""
        return self._drive(self._ops.gc(limit))

    def threads(self) -> list[ThreadInfo]:
        """Every live mapping with its hops and deadline, read page by page."""
        return self._drive(self._ops.iter_threads())

    def debug_dump(self) -> dict[str, str]:
        """``{thread id: dotted chain}`` of every live mapping of this namespace."""
        return as_dump(self.threads())

    def stats(self) -> Stats:
        """Counts, memory and server facts of this namespace, read in bounded steps (see Stats)."""
        return run_sync(self, collect(self._ops))
