"""Batches: many operations in one round trip, sync and async.

A batch is not a transaction: each operation stays atomic on its own (one script run),
but other clients' operations may run between two operations of one batch.

The queueing methods, the order of results and the NOSCRIPT recovery are written once
here; `Batch` and `AsyncBatch` only differ in how one pipeline is sent.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, Self

from .errors import NOT_RUN, UNKNOWN, BatchOrderError, OutcomeUnknownError, RegistryError
from .operations import Call, Operations, Program, as_dump
from .transport import Durability, Outcome, check_durability
from .validation import Chain, ThreadId

if TYPE_CHECKING:
    from .aio import AsyncThreadRegistry
    from .client import ThreadRegistry

Entry = Call[Any] | Program[Any]


def run_entries(entries: Sequence[Entry]) -> Generator[list[Call[Any]], list[Any], list[Any]]:
    """Drives every entry to its result; yields the calls of each round trip.

    Entries take effect in their order. Single calls share a round trip; a multi-step
    entry (debug_dump, gc) sends its first call with the calls before it, then its
    further pages alone, and the entries after it follow once it is done. So a batch
    of single calls is one round trip. A failed entry's result is its exception.

    A reply of UNKNOWN or NOT_RUN (the transport could not keep the batch's order or
    lost its replies) stops the batch: nothing after it is sent; entries not begun get
    NOT_RUN, multi-step entries cut short get UNKNOWN.
    """
    calls = [entry for entry in entries if type(entry) is Call]
    if calls and len(calls) == len(entries):
        # Single calls only (the usual batch): one round trip, each reply decoded in place.
        # A reply that is an error, UNKNOWN or NOT_RUN is the result; no entry follows.
        replies = yield calls
        return [
            reply
            if isinstance(reply, Exception) or reply is UNKNOWN or reply is NOT_RUN
            else call.decode(reply)
            for call, reply in zip(calls, replies, strict=True)
        ]
    results: list[Any] = [None] * len(entries)
    i = 0
    while i < len(entries):
        segment: list[tuple[int, Program[Any] | None, Call[Any]]] = []
        while i < len(entries):
            entry = entries[i]
            i += 1
            if isinstance(entry, Call):
                segment.append((i - 1, None, entry))
                continue
            try:
                segment.append((i - 1, entry, next(entry)))
            except StopIteration as done:
                results[i - 1] = done.value
                continue
            break  # a multi-step entry ends the segment
        while segment:
            replies = yield [call for _, _, call in segment]
            stopped = any(reply is UNKNOWN or reply is NOT_RUN for reply in replies)
            following: list[tuple[int, Program[Any] | None, Call[Any]]] = []
            for (index, program, call), reply in zip(segment, replies, strict=True):
                if isinstance(reply, Exception) or reply is UNKNOWN or reply is NOT_RUN:
                    results[index] = UNKNOWN if program is not None and reply is NOT_RUN else reply
                    if program is not None:
                        program.close()
                    continue
                value = call.decode(reply)
                if program is None:
                    results[index] = value
                    continue
                try:
                    following.append((index, program, program.send(value)))
                except StopIteration as done:
                    results[index] = done.value
            if stopped:
                for index, program, _ in following:
                    program.close()  # type: ignore[union-attr]  # only programs follow
                    results[index] = UNKNOWN
                for later in range(i, len(entries)):
                    entry = entries[later]
                    if not isinstance(entry, Call):
                        entry.close()
                    results[later] = NOT_RUN
                return results
            segment = following
    return results


def merge_outcomes(so_far: Outcome, outcome: Outcome) -> Outcome:
    """What a batch keeps of its rounds: the least acknowledgement, the first interruption."""
    acked = so_far.acknowledged
    if outcome.acknowledged is not None and (acked is None or outcome.acknowledged < acked):
        acked = outcome.acknowledged
    if so_far.interrupted is not None:
        return Outcome([], acked, so_far.interrupted, so_far.message)
    return Outcome([], acked, outcome.interrupted, outcome.message)


class _Queue:
    """The operation methods of a batch: each validates now and queues one entry."""

    def __init__(self, ops: Operations) -> None:
        self._ops = ops
        self._entries: list[Entry] = []
        # What execute() returned: one result per queued operation, in order (None until
        # it ran). A batch runs once; queueing on it or executing it again raises.
        self.results: list[Any] | None = None
        self._executed = False

    def __len__(self) -> int:
        return len(self._entries)

    def _add(self, entry: Entry) -> Self:
        if self._executed:
            self._check_unused()  # raises
        self._entries.append(entry)
        return self

    def _check_unused(self) -> None:
        if self._executed:
            raise RegistryError(
                "this batch was executed already (its results, if it finished, are in .results); "
                "make a new one with reg.batch()"
            )

    def initialize_root(self, organism_name: str = "organism") -> Self:
        return self._add(self._ops.initialize_root(organism_name))

    def get_or_create(self, chain: Chain) -> Self:
        return self._add(self._ops.get_or_create(chain))

    def lookup(self, thread_id: ThreadId) -> Self:
        return self._add(self._ops.lookup(thread_id))

    def lookup_hops(self, thread_id: ThreadId) -> Self:
        return self._add(self._ops.lookup_hops(thread_id))

    def extend_chain(self, current_uuid: ThreadId, next_hop: str) -> Self:
        return self._add(self._ops.extend_chain(current_uuid, next_hop))

    def prune_for_response(self, thread_id: ThreadId, *, drop: bool = False) -> Self:
        return self._add(self._ops.prune_for_response(thread_id, drop))

    def start_chain(self, initiator: str, target: str) -> Self:
        return self._add(self._ops.start_chain(initiator, target))

    def register_thread(self, thread_id: ThreadId, initiator: str, target: str) -> Self:
        return self._add(self._ops.register_thread(thread_id, initiator, target))

    def initialize_table_root(self, table: str, organism: str) -> Self:
        return self._add(self._ops.initialize_table_root(table, organism))

    def get_table_root(self, table: str) -> Self:
        return self._add(self._ops.get_table_root(table))

    def get_table_for_thread(self, thread_id: ThreadId) -> Self:
        return self._add(self._ops.get_table_for_thread(thread_id))

    def cleanup(self, thread_id: ThreadId) -> Self:
        return self._add(self._ops.cleanup(thread_id))

    def clear(self) -> Self:
        return self._add(self._ops.clear())

    def gc(self, limit: int = 1000) -> Self:
        return self._add(self._ops.gc(limit))

    def threads(self) -> Self:
        return self._add(self._ops.iter_threads())

    def debug_dump(self) -> Self:
        def dump() -> Program[dict[str, str]]:
            return as_dump((yield from self._ops.iter_threads()))

        return self._add(dump())

    def _take_entries(self) -> list[Entry]:
        self._check_unused()
        self._executed = True
        entries, self._entries = self._entries, []
        return entries

    def _finish(
        self, results: list[Any], acked: Outcome, durability: Durability | None, raise_on_error: bool
    ) -> list[Any]:
        self.results = results
        if acked.interrupted is OutcomeUnknownError:
            unknown = tuple(i for i, r in enumerate(results) if r is UNKNOWN)
            raise OutcomeUnknownError(f"batch operations {list(unknown)}: {acked.message}", results, unknown)
        if acked.interrupted is BatchOrderError:
            not_run = tuple(i for i, r in enumerate(results) if r is NOT_RUN or r is UNKNOWN)
            raise BatchOrderError(
                f"batch operations {list(not_run)} did not run: {acked.message}", results, not_run
            )
        # A missing acknowledgement concerns every write of the batch: it is raised
        # before the first failed operation (whose exception is in its results).
        check_durability(acked, durability, results)
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results


class Batch(_Queue):
    """Queued operations of a ThreadRegistry, sent in one round trip by execute().

    ``with reg.batch() as b: ...`` executes on a clean exit; ``b.results`` holds them.
    """

    def __init__(self, registry: ThreadRegistry) -> None:
        super().__init__(registry._ops)
        self._registry = registry

    def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send everything queued; the results in order, each as the single call gives it.

        With raise_on_error=False a failed operation's exception stands in its place.
        """
        transport = self._registry._transport
        driver = run_entries(self._take_entries())
        acked = Outcome([], None)
        try:
            calls = next(driver)
            while True:
                outcome = transport.send_many(calls)
                acked = merge_outcomes(acked, outcome)
                calls = driver.send(outcome.replies)
        except StopIteration as done:
            results: list[Any] = done.value
        return self._finish(results, acked, transport.durability, raise_on_error)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.execute()


class AsyncBatch(_Queue):
    """Queued operations of an AsyncThreadRegistry, sent in one round trip by ``await execute()``."""

    def __init__(self, registry: AsyncThreadRegistry) -> None:
        super().__init__(registry._ops)
        self._registry = registry

    async def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """As Batch.execute, as a coroutine."""
        transport = self._registry._transport
        driver = run_entries(self._take_entries())
        acked = Outcome([], None)
        try:
            calls = next(driver)
            while True:
                outcome = await transport.send_many(calls)
                acked = merge_outcomes(acked, outcome)
                calls = driver.send(outcome.replies)
        except StopIteration as done:
            results: list[Any] = done.value
        return self._finish(results, acked, transport.durability, raise_on_error)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            await self.execute()


# Each queueing method is the registry method of the same name, queued: said once here.
for _name, _member in vars(_Queue).items():
    if not _name.startswith("_") and callable(_member) and not _member.__doc__:
        _member.__doc__ = (
            f"Queue ``{_name}`` (see ThreadRegistry.{_name}); its input is checked now, and its "
            "result takes this operation's place in what ``execute()`` returns. Returns the batch."
        )
