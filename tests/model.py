"""An in-memory model of the registry contract (SPEC §3, §4), for model-based tests.

Written from the contract, not from the implementation: plain dicts, no Redis, no TTL
(the tests that use it run the real registry with ttl=None or a ttl far longer than a
test). Same method names and return shapes as `registry.ThreadRegistry`, and the same
exception classes for rejected input, so a test can call both and compare.

Ids are opaque: the model makes its own (random UUIDs) and a test compares it with the
real registry up to a renaming of ids. One rule about ids goes beyond "fresh every time",
because the contract lets the registry reuse an id and the implementation does: an id the
registry itself gave a chain stays that chain's id for the life of the namespace (until
clear()). If the chain's mapping is removed and the chain is created again, it gets the
same id back, unless that id was meanwhile bound elsewhere (register_thread with that
id), in which case it gets a new one. An id is never handed out for a second chain by the
registry itself.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence

from registry import InvalidHopError, InvalidThreadIdError, RootConflictError, ThreadIdConflictError

Hops = tuple[str, ...]

MAX_HOP_BYTES = 256
MAX_DEPTH = 32
MAX_CHAIN_BYTES = 2048  # hops joined by one separator byte
HEX = frozenset("0123456789abcdefABCDEF")
DASHES = (8, 13, 18, 23)


# ------------------------------------------------------------------ input rules (SPEC §4.5)


def valid_hop(hop: object, what: str = "hop") -> str:
    if not isinstance(hop, str):
        raise InvalidHopError(f"{what} {hop!r}: not a str")
    try:
        size = len(hop.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidHopError(f"{what} {hop!r}: not UTF-8") from None
    if size < 1 or size > MAX_HOP_BYTES:
        raise InvalidHopError(f"{what} {hop!r}: {size} bytes, not 1..{MAX_HOP_BYTES}")
    if any(unicodedata.category(ch) == "Cc" for ch in hop):
        raise InvalidHopError(f"{what} {hop!r}: control character")
    return hop


def valid_chain(hops: Sequence[object]) -> Hops:
    if not 1 <= len(hops) <= MAX_DEPTH:
        raise InvalidHopError(f"chain of {len(hops)} hops, not 1..{MAX_DEPTH}")
    out = tuple(valid_hop(h) for h in hops)
    if chain_bytes(out) > MAX_CHAIN_BYTES:
        raise InvalidHopError(f"chain of {chain_bytes(out)} bytes, over {MAX_CHAIN_BYTES}")
    return out


def chain_bytes(hops: Hops) -> int:
    return sum(len(h.encode("utf-8")) for h in hops) + len(hops) - 1


def chain_of(chain: object) -> Hops:
    """A dotted str is split on '.', any other sequence of str is taken hop by hop."""
    if isinstance(chain, str):
        return valid_chain(chain.split("."))
    if isinstance(chain, list | tuple):
        return valid_chain(chain)
    raise InvalidHopError(f"chain {chain!r}: neither a str nor a sequence of hops")


def canonical_id(thread_id: object) -> str | None:
    """A UUID string (8-4-4-4-12 hex digits, either case) in lowercase; else None."""
    if not isinstance(thread_id, str) or len(thread_id) != 36:
        return None
    for i, ch in enumerate(thread_id):
        if (ch != "-") if i in DASHES else (ch not in HEX):
            return None
    return thread_id.lower()


# ------------------------------------------------------------------ the model


class ModelRegistry:
    """The contract of one namespace, as seen through one registry instance."""

    def __init__(self) -> None:
        self._chain_by_id: dict[str, Hops] = {}
        self._id_by_chain: dict[Hops, str] = {}
        self._own_id: dict[Hops, str] = {}  # the id the registry itself first gave a chain
        self._root: str | None = None  # the namespace's root pointer
        self._tables: dict[str, str] = {}  # table -> its root's id
        # What this instance knows (the root_uuid / root_chain properties).
        self.root_uuid: str | None = None
        self.root_chain: str = "system"

    is_shared = True

    # -------------------------------------------------------------- internals

    def _bind(self, thread_id: str, hops: Hops) -> None:
        assert thread_id not in self._chain_by_id and hops not in self._id_by_chain
        self._chain_by_id[thread_id] = hops
        self._id_by_chain[hops] = thread_id

    def _unbind(self, thread_id: str) -> None:
        hops = self._chain_by_id.pop(thread_id)
        del self._id_by_chain[hops]
        if self._root == thread_id:
            self._root = None
        for table in [t for t, tid in self._tables.items() if tid == thread_id]:
            del self._tables[table]

    def _get_or_create(self, hops: Hops) -> str:
        found = self._id_by_chain.get(hops)
        if found is not None:
            return found
        mine = self._own_id.get(hops)
        if mine is None or mine in self._chain_by_id:
            mine = str(uuid.uuid4())
            self._own_id.setdefault(hops, mine)
        self._bind(mine, hops)
        return mine

    def _hops(self, thread_id: object) -> Hops | None:
        tid = canonical_id(thread_id)
        return None if tid is None else self._chain_by_id.get(tid)

    # -------------------------------------------------------------- roots

    def initialize_root(self, organism_name: str = "organism") -> str:
        hops = ("system", valid_hop(organism_name, "organism name"))
        if self._root is not None:
            if self._chain_by_id[self._root] != hops:
                raise RootConflictError(f"root is {self._chain_by_id[self._root]}, not {hops}")
            tid = self._root
        else:
            tid = self._root = self._get_or_create(hops)
        self.root_uuid = tid
        self.root_chain = ".".join(hops)
        return tid

    def initialize_table_root(self, table: str, organism: str) -> str:
        hops = (valid_hop(table, "table name"), valid_hop(organism, "organism name"))
        current = self._tables.get(table)
        if current is not None:
            if self._chain_by_id[current] != hops:
                raise RootConflictError(f"table {table} has root {self._chain_by_id[current]}")
            return current
        tid = self._tables[table] = self._get_or_create(hops)
        return tid

    def get_table_root(self, table: str) -> str | None:
        return self._tables.get(valid_hop(table, "table name"))

    def get_table_for_thread(self, thread_id: str) -> str | None:
        hops = self._hops(thread_id)
        if hops is None or hops[0] not in self._tables:
            return None
        return hops[0]

    # -------------------------------------------------------------- threads

    def get_or_create(self, chain: str | Sequence[str]) -> str:
        return self._get_or_create(chain_of(chain))

    def start_chain(self, initiator: str, target: str) -> str:
        return self._get_or_create((valid_hop(initiator, "initiator"), valid_hop(target, "target")))

    def extend_chain(self, current_uuid: str, next_hop: str) -> str:
        hop = valid_hop(next_hop, "next hop")
        hops = (*(self._hops(current_uuid) or ()), hop)
        if len(hops) > MAX_DEPTH or chain_bytes(hops) > MAX_CHAIN_BYTES:
            raise InvalidHopError(f"extending {current_uuid} would make {len(hops)} hops")
        return self._get_or_create(hops)

    def prune_for_response(self, thread_id: str) -> tuple[str | None, str | None]:
        hops = self._hops(thread_id)
        if hops is None:
            return None, None
        if len(hops) == 1:
            self._unbind(self._id_by_chain[hops])
            return None, None
        parent = hops[:-1]
        return parent[-1], self._get_or_create(parent)

    def register_thread(self, thread_id: str, initiator: str, target: str) -> str:
        tid = canonical_id(thread_id)
        if tid is None:
            raise InvalidThreadIdError(f"thread id {thread_id!r} is not a UUID string")
        pair = (valid_hop(initiator, "initiator"), valid_hop(target, "target"))
        hops = pair if self._root is None else (*self._chain_by_id[self._root], *pair)
        if tid in self._chain_by_id:
            if self._chain_by_id[tid] != hops:  # the id means another chain: never hand it out
                raise ThreadIdConflictError(f"{tid} is bound to {self._chain_by_id[tid]}, not {hops}")
            return tid
        existing = self._id_by_chain.get(hops)
        if existing is not None:
            return existing
        self._bind(tid, hops)
        return tid

    def lookup(self, thread_id: str) -> str | None:
        hops = self._hops(thread_id)
        return None if hops is None else ".".join(hops)

    def lookup_hops(self, thread_id: str) -> Hops | None:
        return self._hops(thread_id)

    def cleanup(self, thread_id: str) -> None:
        tid = canonical_id(thread_id)
        if tid is not None and tid in self._chain_by_id:
            self._unbind(tid)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    # -------------------------------------------------------------- views

    def debug_dump(self) -> dict[str, str]:
        return {tid: ".".join(hops) for tid, hops in self._chain_by_id.items()}

    def hops_by_id(self) -> dict[str, Hops]:
        return dict(self._chain_by_id)
