"""Every operation as data: which script, which arguments, how to read the reply.

This is the one place that knows the wire protocol. The sync class, the async class and
batches all build the same `Call` objects here and differ only in how they send them.
Validation happens while a Call is built, so bad input raises before anything is sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from .errors import InvalidConfigError, UnknownThreadError
from .keys import namespace_keys
from .scripts import Script, script
from .validation import (
    SEP,
    Chain,
    ThreadId,
    check_chain,
    check_hop,
    check_namespace,
    check_thread_id,
    check_ttl,
    normalize_id,
)

T = TypeVar("T")

DEFAULT_TTL = 86400
ROOT_CHAIN_BEFORE_INIT = "system"

# Writes sweep a few thread entries for expiry on the way, so expired mappings are
# reclaimed without anyone calling gc(): every GC_EVERY-th write examines GC_STEP
# (2 entries per write on average: a pass over the hash keeps pace with creation, since
# a write creates at most one mapping in the usual case).
GC_EVERY = 32
GC_STEP = 64
_SWEEP = str(GC_STEP)
# Entries one call examines at most (the scripts refuse more): a step's server time stays
# well under a millisecond at the input limits (docs/design.md, "Work per call").
GC_PASS_STEP = 128  # entries one step of gc() examines, whatever its limit (MAX_STEP in lua/_base.lua)
DUMP_PAGE = 500


@dataclass(slots=True)
class Call(Generic[T]):
    """One script run: `decode` turns its raw reply into the method's result. Built once
    per operation and never changed after (not frozen: a frozen dataclass costs three
    times as much to build, on every call).

    `script` is None when the answer is known without asking the server (a read with a
    malformed id); `decode(None)` then gives it.
    """

    script: Script | None
    args: tuple[str, ...]
    decode: Callable[[Any], T]
    writes: bool = False  # changes state: waits for replicas when wait_replicas is set
    # May remove a mapping (cleanup, clear, a one-hop prune). Such a call is never sent
    # again after its reply was lost: another client may have re-created the chain
    # (with the same derived id) in between, and a second removal would remove that.
    removes: bool = False


# A multi-step operation (debug_dump, gc): yields Calls, is sent their results.
Program = Generator[Call[Any], Any, T]


# The variant nibble of a UUID from any hex digit: its two low bits under the bits 10.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def random_uuid() -> str:
    """A version-4 UUID string from os.urandom: uuid.uuid4() at a fifth of the cost.
    122 random bits: the version nibble replaces one hex digit, the variant two bits."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def text(value: Any) -> str:
    """A reply value as str, whether the client decodes responses or not."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def hops_of(value: Any) -> tuple[str, ...]:
    return tuple(text(value).split(SEP))


def dotted(value: Any) -> str | None:
    return None if value is None else text(value).replace(SEP, ".")


def _optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def _optional_hops(value: Any) -> tuple[str, ...] | None:
    return None if value is None else hops_of(value)


def _none(_: Any) -> None:
    return None


class Route(NamedTuple):
    """Where an answer goes (``prune_for_response``): the hop that asked and its thread.

    Both are None when there is no caller (an unknown id, or a one-hop chain). It
    unpacks as a pair: ``target, back = reg.prune_for_response(tid)``.
    """

    target: str | None
    thread_id: str | None


NO_ROUTE = Route(None, None)


class Operations:
    """Builds the Calls of one registry instance (namespace, ttl, root as known here)."""

    def __init__(
        self, namespace: str = "default", ttl: float | None = DEFAULT_TTL, strict: bool = False
    ) -> None:
        self.namespace = check_namespace(namespace)
        self.ttl_ms = check_ttl(ttl)
        if not isinstance(strict, bool):
            raise InvalidConfigError(f"strict {strict!r} must be True or False")
        self.strict = strict
        self._strict_arg = "1" if strict else ""
        self.keys = namespace_keys(self.namespace)
        self.root_uuid: str | None = None
        self.root_chain: str = ROOT_CHAIN_BEFORE_INIT
        self._ttl_arg = "" if self.ttl_ms is None else str(self.ttl_ms)
        self._writes = 0

    # ------------------------------------------------------------ helpers

    def _write(self, name: str, *args: str) -> tuple[Script, tuple[str, ...]]:
        self._writes += 1
        sweep = str(GC_STEP) if self._writes % GC_EVERY == 0 else "0"
        return script(name), (self._ttl_arg, random_uuid(), sweep, *args)

    def _write_call(self, name: str, decode: Callable[[Any], T], *args: str) -> Call[T]:
        # _write, inlined: this runs once per write operation
        self._writes += 1
        sweep = _SWEEP if self._writes % GC_EVERY == 0 else "0"
        return Call(script(name), (self._ttl_arg, random_uuid(), sweep, *args), decode, True)

    @staticmethod
    def _read_call(name: str, decode: Callable[[Any], T], *args: str) -> Call[T]:
        return Call(script(name), args, decode, False)

    @staticmethod
    def _plain_write(name: str, decode: Callable[[Any], T], *args: str, removes: bool = False) -> Call[T]:
        """A write without ttl/candidate/sweep arguments (cleanup, clear, gc)."""
        return Call(script(name), args, decode, writes=True, removes=removes)

    # ------------------------------------------------------------ roots

    def initialize_root(self, organism_name: str = "organism") -> Call[str]:
        organism = check_hop(organism_name, "organism name")

        def decode(reply: Any) -> str:
            self.root_uuid = text(reply)
            self.root_chain = f"system.{organism}"
            return self.root_uuid

        return self._write_call("initialize_root", decode, organism)

    def initialize_table_root(self, table: str, organism: str) -> Call[str]:
        return self._write_call(
            "initialize_table_root",
            text,
            check_hop(table, "table name"),
            check_hop(organism, "organism name"),
        )

    def get_table_root(self, table: str) -> Call[str | None]:
        return self._read_call("get_table_root", _optional_text, check_hop(table, "table name"))

    def get_table_for_thread(self, thread_id: ThreadId) -> Call[str | None]:
        tid = normalize_id(thread_id)
        if tid is None:
            return Call(None, (), _none)
        return self._read_call("get_table_for_thread", _optional_text, tid)

    # ------------------------------------------------------------ threads

    def get_or_create(self, chain: Chain) -> Call[str]:
        return self._write_call("get_or_create", text, SEP.join(check_chain(chain)))

    def start_chain(self, initiator: str, target: str) -> Call[str]:
        hops = (check_hop(initiator, "initiator"), check_hop(target, "target"))
        return self._write_call("get_or_create", text, SEP.join(hops))

    def _known_form(self, thread_id: ThreadId) -> str | None:
        """The canonical id; in strict mode a malformed one raises (no thread has it)."""
        tid = normalize_id(thread_id)
        if tid is None and self.strict:
            raise UnknownThreadError(
                f"thread id {thread_id!r} is not a UUID, so no thread has it (strict mode); nothing was sent",
                thread_id if isinstance(thread_id, str) else None,
            )
        return tid

    def extend_chain(self, current_uuid: ThreadId, next_hop: str) -> Call[str]:
        hop = check_hop(next_hop, "next hop")
        tid = self._known_form(current_uuid) or ""
        return self._write_call("extend_chain", text, tid, hop, self._strict_arg)

    def prune_for_response(self, thread_id: ThreadId, drop: bool = False) -> Call[Route]:
        if not isinstance(drop, bool):
            raise InvalidConfigError(f"drop {drop!r} must be True or False")
        tid = self._known_form(thread_id)
        if tid is None:
            return Call(None, (), lambda _: NO_ROUTE)

        def decode(reply: Any) -> Route:
            target, new_id = reply
            return Route(_optional_text(target), _optional_text(new_id))

        s, full = self._write("prune_for_response", tid, self._strict_arg, "1" if drop else "")
        return Call(s, full, decode, writes=True, removes=True)

    def register_thread(self, thread_id: ThreadId, initiator: str, target: str) -> Call[str]:
        tid = check_thread_id(thread_id)
        return self._write_call(
            "register_thread", text, tid, check_hop(initiator, "initiator"), check_hop(target, "target")
        )

    def lookup(self, thread_id: ThreadId) -> Call[str | None]:
        tid = normalize_id(thread_id)
        if tid is None:
            return Call(None, (), _none)
        return self._read_call("lookup", dotted, tid)

    def lookup_hops(self, thread_id: ThreadId) -> Call[tuple[str, ...] | None]:
        tid = normalize_id(thread_id)
        if tid is None:
            return Call(None, (), _none)
        return self._read_call("lookup", _optional_hops, tid)

    def cleanup(self, thread_id: ThreadId) -> Call[None]:
        tid = normalize_id(thread_id)
        if tid is None:
            return Call(None, (), _none)
        return self._plain_write("cleanup", _none, tid, removes=True)

    def clear(self) -> Call[None]:
        def decode(_: Any) -> None:
            self.root_uuid = None
            self.root_chain = ROOT_CHAIN_BEFORE_INIT

        return self._plain_write("clear", decode, removes=True)

    # ------------------------------------------------------------ bounded multi-step work

    def gc_step(self, cursor: str = "0", most: int = GC_PASS_STEP) -> Call[tuple[int, str]]:
        """One sweep step from `cursor` that reclaims at most `most` mappings:
        (mappings reclaimed, next cursor; '0' ends a pass)."""

        def decode(reply: Any) -> tuple[int, str]:
            return int(reply[0]), text(reply[1])

        return self._plain_write("gc", decode, str(GC_PASS_STEP), cursor, str(min(most, GC_PASS_STEP)))

    def gc(self, limit: int = 1000) -> Program[int]:
        """Sweep until `limit` mappings were reclaimed or one pass over every entry ended.

        The limit is checked here, when the call is made (or queued in a batch), not
        when the first step runs.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidConfigError(f"gc limit {limit!r} must be an int >= 1")
        return self._gc(limit)

    def _gc(self, limit: int) -> Program[int]:
        reclaimed, cursor = 0, "0"
        while True:
            n, cursor = yield self.gc_step(cursor, limit - reclaimed)
            reclaimed += int(n)
            if cursor == "0" or reclaimed >= limit:
                return reclaimed

    def dump_page(self, kind: str, cursor: str, count: int = DUMP_PAGE) -> Call[tuple[str, list[ThreadInfo]]]:
        def decode(reply: Any) -> tuple[str, list[ThreadInfo]]:
            rows = [
                ThreadInfo(text(reply[i]), hops_of(reply[i + 1]), int(reply[i + 2]) if reply[i + 2] else None)
                for i in range(1, len(reply), 3)
            ]
            return text(reply[0]), rows

        return self._read_call("dump", decode, kind, cursor, str(count))

    def iter_threads(self, page: int = DUMP_PAGE) -> Generator[Call[Any], Any, list[ThreadInfo]]:
        """Every live mapping, page by page (permanent ones last)."""
        out: list[ThreadInfo] = []
        for kind in ("t", "p"):
            cursor = "0"
            while True:
                cursor, rows = yield self.dump_page(kind, cursor, page)
                out.extend(rows)
                if cursor == "0":
                    break
        return out


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """A live mapping as an operator sees it."""

    thread_id: str
    hops: tuple[str, ...]
    deadline_ms: int | None  # None: never expires (roots, table roots, ttl=None)

    @property
    def chain(self) -> str:
        """The hops joined with ``.``, as ``lookup`` renders them."""
        return ".".join(self.hops)


def as_dump(rows: Sequence[ThreadInfo]) -> dict[str, str]:
    return {row.thread_id: row.chain for row in rows}
