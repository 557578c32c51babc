"""AsyncThreadRegistry: the registry as coroutines, on redis.asyncio clients.

Same scripts, same validation, same reply decoding as the sync class (all in
operations.py); only the sending is awaited. Cancelling an awaiting call cannot leave
half a change: the script either ran whole on the server or not at all.
"""

from __future__ import annotations

from typing import TypeVar

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff

from .base import ClientKinds, RegistryBase, share_docs
from .batch import AsyncBatch
from .check import CheckResult, run_check
from .client import ThreadRegistry
from .operations import Call, Program, Route, ThreadInfo, as_dump
from .sentinel import AsyncPrimaryConnection
from .stats import Stats, collect, run_async
from .transport import AsyncTransport
from .validation import Chain, ThreadId

T = TypeVar("T")


class AsyncThreadRegistry(RegistryBase):
    """The asyncio twin of ThreadRegistry: every operation is a coroutine.

    Works on redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster and
    fakeredis.FakeAsyncRedis. Use ``async with`` or ``await reg.aclose()``.
    """

    _transport_class = AsyncTransport
    _clients = ClientKinds(
        redis.asyncio.Redis,
        redis.asyncio.cluster.RedisCluster,
        redis.asyncio.sentinel.Sentinel,
        AsyncRetry,
        ExponentialBackoff,
        AsyncPrimaryConnection,
    )
    _transport: AsyncTransport

    async def _run(self, call: Call[T]) -> T:
        return await self._transport.run(call)

    async def _drive(self, program: Program[T]) -> T:
        try:
            call = next(program)
            while True:
                call = program.send(await self._run(call))
        except StopIteration as done:
            result: T = done.value
            return result

    def batch(self) -> AsyncBatch:
        """A batch: queue operations on it, then ``await execute()`` sends them in one round trip."""
        return AsyncBatch(self)

    async def ping(self) -> bool:
        """Ask the server (one round trip). True when it answers; redis-py's
        ConnectionError (or TimeoutError) when it cannot be reached."""
        return bool(await self._client.ping())

    async def aclose(self) -> None:
        """Close the client's connections (and those to the Sentinels, if from_sentinel made them)."""
        await self._client.aclose()
        for sentinel in getattr(self._sentinel, "sentinels", ()):
            await sentinel.aclose()

    async def __aenter__(self) -> AsyncThreadRegistry:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ operations

    async def initialize_root(self, organism_name: str = "organism") -> str:
        return await self._transport.run(self._ops.initialize_root(organism_name))

    async def get_or_create(self, chain: Chain) -> str:
        return await self._transport.run(self._ops.get_or_create(chain))

    async def lookup(self, thread_id: ThreadId) -> str | None:
        return await self._transport.run(self._ops.lookup(thread_id))

    async def lookup_hops(self, thread_id: ThreadId) -> tuple[str, ...] | None:
        return await self._transport.run(self._ops.lookup_hops(thread_id))

    async def extend_chain(self, current_uuid: ThreadId, next_hop: str) -> str:
        return await self._transport.run(self._ops.extend_chain(current_uuid, next_hop))

    async def prune_for_response(self, thread_id: ThreadId, *, drop: bool = False) -> Route:
        return await self._transport.run(self._ops.prune_for_response(thread_id, drop))

    async def start_chain(self, initiator: str, target: str) -> str:
        return await self._transport.run(self._ops.start_chain(initiator, target))

    async def register_thread(self, thread_id: ThreadId, initiator: str, target: str) -> str:
        return await self._transport.run(self._ops.register_thread(thread_id, initiator, target))

    async def initialize_table_root(self, table: str, organism: str) -> str:
        return await self._transport.run(self._ops.initialize_table_root(table, organism))

    async def get_table_root(self, table: str) -> str | None:
        return await self._transport.run(self._ops.get_table_root(table))

    async def get_table_for_thread(self, thread_id: ThreadId) -> str | None:
        return await self._transport.run(self._ops.get_table_for_thread(thread_id))

    async def cleanup(self, thread_id: ThreadId) -> None:
        await self._transport.run(self._ops.cleanup(thread_id))

    async def clear(self) -> None:
        await self._transport.run(self._ops.clear())

    async def gc(self, limit: int = 1000) -> int:
        return await self._drive(self._ops.gc(limit))

    async def threads(self) -> list[ThreadInfo]:
        return await self._drive(self._ops.iter_threads())

    async def debug_dump(self) -> dict[str, str]:
        return as_dump(await self.threads())

    async def check(self, repair: bool = False) -> CheckResult:
        """Verify every invariant of this namespace in bounded pages; with `repair`, mend
        what can be mended without guessing, one script per step (see CheckResult)."""
        return await self._drive(run_check(self._ops, repair))

    async def stats(self) -> Stats:
        """Counts, memory and server facts of this namespace, read in bounded steps (see Stats)."""
        return await run_async(self, collect(self._ops))


# The operations mean what ThreadRegistry's do: their docs are written once, there.
share_docs(AsyncThreadRegistry, ThreadRegistry)
