"""The contenders: (a) this library, (b) plain commands, (c) WATCH/MULTI, (d) the EVALSHA floor.

(b) and (c) are written here on purpose, the way a client without server-side scripts has to
work: two string keys per thread, ``<prefix>:c:<chain>`` -> id and ``<prefix>:i:<id>`` -> chain,
each with a native TTL. They keep hop boundaries with the same unit separator as the library,
but they do less than the library does: no input validation, no touching of ancestors, no
override path for taken ids. (b) reads with GET and then writes both directions with one
pipeline of SET and EXPIRE, so it has a race window; (c) WATCHes what it read and commits with
MULTI/EXEC, retrying on conflict. (d) runs a script that returns at once, with the same keys and
the same number and size of arguments as the library's call: the cost of one EVALSHA round trip
through redis-py, below which no single-script operation can go.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import redis
from redis.client import Pipeline
from redis.exceptions import WatchError

from registry import ThreadRegistry
from registry.keys import namespace_keys

SEP = "\x1f"
TTL_S = 86400

T = TypeVar("T")

NAMES = ("ours", "plain", "watch", "floor")
LABELS = {
    "ours": "(a) this library",
    "plain": "(b) GET + pipeline SET/EXPIRE",
    "watch": "(c) WATCH/MULTI + retry",
    "floor": "(d) EVALSHA no-op floor",
}


class Contender(Protocol):
    """What every contender offers: the registry's methods the benchmark drives."""

    def initialize_root(self, organism_name: str = ...) -> str: ...
    def get_or_create(self, chain: str) -> str: ...
    def extend_chain(self, current_uuid: str, next_hop: str) -> str: ...
    def prune_for_response(self, thread_id: str) -> tuple[str | None, str | None]: ...
    def register_thread(self, thread_id: str, initiator: str, target: str) -> str: ...
    def lookup(self, thread_id: str) -> str | None: ...


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class PlainBaseline:
    """(b): GET to read, then one non-transactional pipeline of SET + EXPIRE for both directions."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: int = TTL_S) -> None:
        self.r = client
        self.prefix = prefix
        self.cp = f"{prefix}:c:"
        self.ip = f"{prefix}:i:"
        self.ttl = ttl
        self.root_hops: tuple[str, ...] = ()

    def _bind(self, chain: str, tid: str) -> None:
        p = self.r.pipeline(transaction=False)
        p.set(self.cp + chain, tid)
        p.expire(self.cp + chain, self.ttl)
        p.set(self.ip + tid, chain)
        p.expire(self.ip + tid, self.ttl)
        p.execute()

    def _get_or_create(self, chain: str) -> str:
        found = self.r.get(self.cp + chain)
        tid = _text(found) if found is not None else str(uuid.uuid4())
        self._bind(chain, tid)  # create, or refresh both directions' TTL
        return tid

    def initialize_root(self, organism_name: str = "organism") -> str:
        self.root_hops = ("system", organism_name)
        chain = SEP.join(self.root_hops)
        tid = self._get_or_create(chain)
        self.r.persist(self.cp + chain)
        self.r.persist(self.ip + tid)
        return tid

    def get_or_create(self, chain: str) -> str:
        return self._get_or_create(chain.replace(".", SEP))

    def extend_chain(self, current_uuid: str, next_hop: str) -> str:
        current = self.r.get(self.ip + current_uuid)
        return self._get_or_create(next_hop if current is None else _text(current) + SEP + next_hop)

    def prune_for_response(self, thread_id: str) -> tuple[str | None, str | None]:
        current = self.r.get(self.ip + thread_id)
        if current is None:
            return None, None
        parent, sep, _ = _text(current).rpartition(SEP)
        if not sep:
            self.r.delete(self.cp + _text(current), self.ip + thread_id)
            return None, None
        return parent.rpartition(SEP)[2], self._get_or_create(parent)

    def register_thread(self, thread_id: str, initiator: str, target: str) -> str:
        chain = SEP.join((*self.root_hops, initiator, target))
        bound, existing = self.r.mget(self.ip + thread_id, self.cp + chain)
        if bound is not None:
            self._bind(_text(bound), thread_id)
            return thread_id
        if existing is not None:
            return _text(existing)
        self._bind(chain, thread_id)
        return thread_id

    def lookup(self, thread_id: str) -> str | None:
        value = self.r.get(self.ip + thread_id)
        return None if value is None else _text(value).replace(SEP, ".")


class WatchBaseline:
    """(c): optimistic transactions. WATCH every key read, MULTI/EXEC the writes, retry on conflict."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: int = TTL_S) -> None:
        self.r = client
        self.prefix = prefix
        self.cp = f"{prefix}:c:"
        self.ip = f"{prefix}:i:"
        self.ttl = ttl
        self.root_hops: tuple[str, ...] = ()
        self.retries = 0

    def _txn(self, body: Callable[[Pipeline], T]) -> T:
        pipe = self.r.pipeline(transaction=True)
        try:
            while True:
                try:
                    return body(pipe)
                except WatchError:
                    self.retries += 1
                    pipe.reset()
        finally:
            pipe.reset()

    def _bind(self, pipe: Pipeline, chain: str, tid: str) -> None:
        pipe.multi()
        pipe.set(self.cp + chain, tid)
        pipe.expire(self.cp + chain, self.ttl)
        pipe.set(self.ip + tid, chain)
        pipe.expire(self.ip + tid, self.ttl)
        pipe.execute()

    def _get_or_create(self, pipe: Pipeline, chain: str) -> str:
        pipe.watch(self.cp + chain)  # type: ignore[no-untyped-call]
        found = pipe.get(self.cp + chain)
        tid = _text(found) if found is not None else str(uuid.uuid4())
        self._bind(pipe, chain, tid)
        return tid

    def initialize_root(self, organism_name: str = "organism") -> str:
        self.root_hops = ("system", organism_name)
        chain = SEP.join(self.root_hops)
        tid = self._txn(lambda p: self._get_or_create(p, chain))
        self.r.persist(self.cp + chain)
        self.r.persist(self.ip + tid)
        return tid

    def get_or_create(self, chain: str) -> str:
        encoded = chain.replace(".", SEP)
        return self._txn(lambda p: self._get_or_create(p, encoded))

    def extend_chain(self, current_uuid: str, next_hop: str) -> str:
        def body(p: Pipeline) -> str:
            p.watch(self.ip + current_uuid)  # type: ignore[no-untyped-call]
            current = p.get(self.ip + current_uuid)
            return self._get_or_create(p, next_hop if current is None else _text(current) + SEP + next_hop)

        return self._txn(body)

    def prune_for_response(self, thread_id: str) -> tuple[str | None, str | None]:
        def body(p: Pipeline) -> tuple[str | None, str | None]:
            p.watch(self.ip + thread_id)  # type: ignore[no-untyped-call]
            current = p.get(self.ip + thread_id)
            if current is None:
                return None, None
            parent, sep, _ = _text(current).rpartition(SEP)
            if not sep:
                p.multi()
                p.delete(self.cp + _text(current), self.ip + thread_id)
                p.execute()
                return None, None
            return parent.rpartition(SEP)[2], self._get_or_create(p, parent)

        return self._txn(body)

    def register_thread(self, thread_id: str, initiator: str, target: str) -> str:
        chain = SEP.join((*self.root_hops, initiator, target))

        def body(p: Pipeline) -> str:
            p.watch(self.ip + thread_id, self.cp + chain)  # type: ignore[no-untyped-call]
            bound, existing = p.mget(self.ip + thread_id, self.cp + chain)
            if bound is not None:
                self._bind(p, _text(bound), thread_id)
                return thread_id
            if existing is not None:
                return _text(existing)
            self._bind(p, chain, thread_id)
            return thread_id

        return self._txn(body)

    def lookup(self, thread_id: str) -> str | None:
        value = self.r.get(self.ip + thread_id)
        return None if value is None else _text(value).replace(SEP, ".")


NOOP_SOURCE = "return 1"
_FIXED_ID = "00000000-0000-4000-8000-000000000000"


class Floor:
    """(d): EVALSHA of a script that returns at once, with the library's keys and argument shapes.

    Argument values are fixed strings of the same length as the library's (ttl, fresh id,
    sweep count, then the operation's own), so the wire cost matches and nothing is computed.
    """

    def __init__(self, client: redis.Redis, namespace: str, ttl: int = TTL_S) -> None:
        self.r = client
        self.keys = namespace_keys(namespace)
        self.sha = _text(client.script_load(NOOP_SOURCE))
        self.write_head = (str(ttl * 1000), _FIXED_ID, "0")

    def _call(self, *args: str) -> Any:
        return self.r.execute_command("EVALSHA", self.sha, 3, *self.keys, *args)  # type: ignore[no-untyped-call]

    def initialize_root(self, organism_name: str = "organism") -> str:
        self._call(*self.write_head, organism_name)
        return _FIXED_ID

    def get_or_create(self, chain: str) -> str:
        self._call(*self.write_head, chain.replace(".", SEP))
        return _FIXED_ID

    def extend_chain(self, current_uuid: str, next_hop: str) -> str:
        self._call(*self.write_head, current_uuid, next_hop)
        return _FIXED_ID

    def prune_for_response(self, thread_id: str) -> tuple[str | None, str | None]:
        self._call(*self.write_head, thread_id)
        return "router", _FIXED_ID

    def register_thread(self, thread_id: str, initiator: str, target: str) -> str:
        self._call(*self.write_head, thread_id, initiator, target)
        return thread_id

    def lookup(self, thread_id: str) -> str | None:
        self._call(thread_id)
        return None


class DictRegistry:
    """The seed's in-process design for the embedded comparison: two dicts under one lock.

    Private to one process, no TTL, no validation: the reference speed of keeping the mapping
    in Python at all, against which the embedded (fakeredis + the Lua scripts) backend is read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, str] = {}  # dotted chain -> id
        self._chains: dict[str, str] = {}  # id -> dotted chain
        self._root: tuple[str, ...] = ()

    def _bind(self, chain: str) -> str:  # with the lock held
        tid = self._ids.get(chain)
        if tid is None:
            tid = str(uuid.uuid4())
            self._ids[chain] = tid
            self._chains[tid] = chain
        return tid

    def initialize_root(self, organism_name: str = "organism") -> str:
        self._root = ("system", organism_name)
        with self._lock:
            return self._bind(".".join(self._root))

    def get_or_create(self, chain: str) -> str:
        with self._lock:
            return self._bind(chain)

    def extend_chain(self, current_uuid: str, next_hop: str) -> str:
        with self._lock:
            current = self._chains.get(current_uuid)
            return self._bind(next_hop if current is None else f"{current}.{next_hop}")

    def prune_for_response(self, thread_id: str) -> tuple[str | None, str | None]:
        with self._lock:
            chain = self._chains.get(thread_id)
            if chain is None:
                return None, None
            parent, dot, _ = chain.rpartition(".")
            if not dot:
                del self._chains[thread_id], self._ids[chain]
                return None, None
            return parent.rpartition(".")[2], self._bind(parent)

    def register_thread(self, thread_id: str, initiator: str, target: str) -> str:
        chain = ".".join((*self._root, initiator, target))
        with self._lock:
            if thread_id in self._chains:
                return thread_id
            existing = self._ids.get(chain)
            if existing is not None:
                return existing
            self._ids[chain] = thread_id
            self._chains[thread_id] = chain
            return thread_id

    def lookup(self, thread_id: str) -> str | None:
        with self._lock:
            return self._chains.get(thread_id)


def make(name: str, client: redis.Redis, tag: str) -> Contender:
    """A contender over `client`; `tag` keeps its keys apart from every other run and shape."""
    if name == "ours":
        return ThreadRegistry(client, namespace=f"bench-{tag}", ttl=TTL_S)
    if name == "plain":
        return PlainBaseline(client, f"pb:{{{tag}}}")
    if name == "watch":
        return WatchBaseline(client, f"pw:{{{tag}}}")
    if name == "floor":
        return Floor(client, f"floor-{tag}")
    raise ValueError(f"unknown contender {name!r}")


def retries_of(contender: Contender) -> int:
    return contender.retries if isinstance(contender, WatchBaseline) else 0
