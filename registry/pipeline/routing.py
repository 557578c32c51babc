"""Where a message goes next: through the registry, or (the baseline) by its own chain.

`RegistryRouting` is the integration pattern (docs/pipeline.md). For a batch of
messages it does, in this order:

1. `resolve`, one registry batch: ``extend_chain(thread, hop)`` for each forward;
   ``prune_for_response(thread)`` (no drop) for each answer, which names the hop that
   asked and its thread; ``lookup_hops`` before it where the listener wants the path.
   Strict mode: an unknown thread raises UnknownThreadError in its place, meaning
   "this message was handled to the end before" (its thread was dropped after its
   answer was sent): the worker acknowledges it and moves on.
2. (the worker) ``XADD`` of every outgoing message.
3. `finish`, one registry batch: ``cleanup(thread)`` of each answered thread, only now
   that its answer is in a stream. Not ``prune_for_response(drop=True)``: that touches
   the parent again, and by now the parent's own answer may have been sent and its
   thread dropped, which would bind it again for nobody (a leak).

A crash anywhere before step 3 leaves the entry unacknowledged and its thread alive:
the entry is handled again from step 1, and sends the same answer again (a duplicate,
never a loss). After step 3, a repeat finds the thread unknown at step 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..client import ThreadRegistry
from ..errors import UnknownThreadError
from ..identity import listener_of
from .listeners import Answer, Forward
from .wire import Message


@dataclass(frozen=True)
class Outgoing:
    """A message to send: to `listener`'s stream, on `thread_id` (or with `chain`)."""

    listener: str
    thread_id: str | None
    payload: dict[str, Any]
    chain: list[str] | None = None


class Routing(Protocol):
    ops: int  # registry operations sent so far

    def resolve(self, items: list[tuple[Message, Forward | Answer]]) -> list[Outgoing | Exception]: ...

    def finish(self, answered: list[Message]) -> list[Exception | None]: ...


class RegistryRouting:
    """Routes by thread id alone; the registry knows every chain."""

    def __init__(self, registry: ThreadRegistry) -> None:
        self.registry = registry
        self.ops = 0

    def resolve(self, items: list[tuple[Message, Forward | Answer]]) -> list[Outgoing | Exception]:
        batch = self.registry.batch()
        for msg, action in items:
            if isinstance(action, Forward):
                batch.extend_chain(msg.thread_id, action.hop)
            else:
                if action.needs_path:
                    batch.lookup_hops(msg.thread_id)
                batch.prune_for_response(msg.thread_id)
        self.ops += len(batch)
        results = iter(batch.execute(raise_on_error=False))
        out: list[Outgoing | Exception] = []
        for _msg, action in items:
            if isinstance(action, Forward):
                thread = next(results)
                out.append(
                    thread if isinstance(thread, Exception) else Outgoing(action.hop, thread, action.payload)
                )
                continue
            path = next(results) if action.needs_path else None
            route = next(results)
            if isinstance(route, Exception):
                out.append(route)
                continue
            payload = dict(action.payload, to=route.target)
            if action.needs_path:
                payload["path"] = None if path is None or isinstance(path, Exception) else list(path)
            out.append(Outgoing(listener_of(route.target), route.thread_id, payload))
        return out

    def finish(self, answered: list[Message]) -> list[Exception | None]:
        if not answered:
            return []
        batch = self.registry.batch()
        for msg in answered:
            batch.cleanup(msg.thread_id)
        self.ops += len(batch)
        return [r if isinstance(r, Exception) else None for r in batch.execute(raise_on_error=False)]


class ChainRouting:
    """The baseline: each message carries its whole chain; no registry at all."""

    def __init__(self) -> None:
        self.ops = 0

    def resolve(self, items: list[tuple[Message, Forward | Answer]]) -> list[Outgoing | Exception]:
        out: list[Outgoing | Exception] = []
        for msg, action in items:
            chain = list(msg.chain or [])
            if isinstance(action, Forward):
                out.append(Outgoing(action.hop, None, action.payload, [*chain, action.hop]))
                continue
            if len(chain) < 2:
                out.append(UnknownThreadError(f"chain {chain!r} has no caller"))
                continue
            payload = dict(action.payload, to=chain[-2])
            if action.needs_path:
                payload["path"] = chain
            out.append(Outgoing(listener_of(chain[-2]), None, payload, chain[:-1]))
        return out

    def finish(self, answered: list[Message]) -> list[Exception | None]:
        return [None] * len(answered)
