"""Input rules, checked before anything is sent: a hop is 1 to 256 bytes of UTF-8
without control characters, a chain 1 to 32 hops and at most 2,048 bytes, a namespace
1 to 64 of ``A-Z a-z 0-9 _ - . :``, a thread id a UUID, a ttl up to ten years.

The scripts check the same rules again before their first write; checking here too
gives Python callers precise messages and keeps a bad batch from sending anything.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence

from .errors import InvalidConfigError, InvalidHopError, InvalidNamespaceError, InvalidThreadIdError

MAX_HOP_BYTES = 256
# A chain is at most 32 hops and 2,048 bytes (its hops joined by one separator byte).
# A call touches a chain's ancestors, and each costs the server work that grows with
# its length; these bounds keep any one call well under a millisecond of server time,
# while every shard's other namespaces wait for it (docs/design.md, "Work per call").
MAX_HOPS = 32
MAX_CHAIN_BYTES = 2048
# Ten years. Deadlines are milliseconds in 6 bytes, and the scripts print them as
# integers; this keeps every deadline far inside both. Use None for "never".
MAX_TTL_SECONDS = 10 * 365 * 86400
SEP = "\x1f"  # joins hops on the wire and in storage; hops cannot contain it

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMESPACE = re.compile(r"[A-Za-z0-9_\-.:]{1,64}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

Chain = str | Sequence[str]
# A thread id as callers may hold it: str, uuid.UUID, or bytes from a client without
# decode_responses. All are the same id (normalize_id).
ThreadId = str | uuid.UUID | bytes


def check_hop(hop: object, what: str = "hop") -> str:
    """Return the hop if it is 1 to 256 bytes of UTF-8 without control characters."""
    if _fine(hop):
        return hop  # type: ignore[return-value]  # _fine accepts only str
    if not isinstance(hop, str):
        raise InvalidHopError(f"{what} {hop!r} must be a str, not {type(hop).__name__}")
    try:
        size = len(hop.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidHopError(f"{what} {hop!r} is not valid UTF-8 (lone surrogate)") from None
    if not 1 <= size <= MAX_HOP_BYTES:
        raise InvalidHopError(
            f"{what} {_short(hop)} is {size} bytes; a hop is 1 to {MAX_HOP_BYTES} bytes of UTF-8"
        )
    match = _CONTROL.search(hop)
    if match:
        raise InvalidHopError(
            f"{what} {_short(hop)} contains the control character U+{ord(match.group()):04X}; hops may not"
        )
    return hop


def check_chain(chain: object) -> tuple[str, ...]:
    """Return the hops of a chain: a dotted str is split on '.', a sequence is taken verbatim."""
    if isinstance(chain, str):
        hops: Sequence[object] = chain.split(".")
    elif isinstance(chain, Sequence) and not isinstance(chain, bytes | bytearray):
        hops = chain
    else:
        raise InvalidHopError(f"chain {chain!r} must be a dotted str or a sequence of hops")
    if not 1 <= len(hops) <= MAX_HOPS:
        raise InvalidHopError(f"chain {_short(chain)} has {len(hops)} hops; a chain has 1 to {MAX_HOPS}")
    size = len(hops) - 1  # the separators
    for i, hop in enumerate(hops):
        if not _fine(hop):  # the message is built only when a hop is bad
            check_hop(hop, f"chain {_short(chain)}: hop {i + 1}")
        text: str = hop  # type: ignore[assignment]  # it passed _fine or check_hop: a str
        size += len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > MAX_CHAIN_BYTES:
        raise InvalidHopError(
            f"chain {_short(chain)} is {size} bytes (its hops joined by one byte each); "
            f"a chain is at most {MAX_CHAIN_BYTES} bytes"
        )
    return tuple(hops)  # type: ignore[arg-type]  # every hop passed _fine: all str


def _fine(hop: object) -> bool:
    """The fast path of check_hop: True for a hop that breaks no rule."""
    if type(hop) is not str or not hop or len(hop) > MAX_HOP_BYTES or _CONTROL.search(hop):
        return False
    if hop.isascii():
        return True
    try:
        return len(hop.encode("utf-8")) <= MAX_HOP_BYTES
    except UnicodeEncodeError:
        return False


def check_namespace(namespace: object) -> str:
    """Return the namespace if it is 1 to 64 of A-Z a-z 0-9 _ - . :"""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise InvalidNamespaceError(
            f"namespace {namespace!r} must be 1 to 64 characters of A-Z a-z 0-9 _ - . :"
        )
    return namespace


def check_ttl(ttl: object) -> int | None:
    """Return the ttl in milliseconds (None: never expire)."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidConfigError(f"ttl {ttl!r} must be a number of seconds or None")
    if not math.isfinite(ttl) or round(ttl * 1000) < 1 or ttl > MAX_TTL_SECONDS:
        raise InvalidConfigError(
            f"ttl {ttl!r} must be from 0.001 to {MAX_TTL_SECONDS} seconds (ten years), or None: never expire"
        )
    return round(ttl * 1000)


def normalize_id(thread_id: object) -> str | None:
    """The canonical (lowercase) form of a thread id, or None if it is no UUID.

    A str, a ``uuid.UUID``, or bytes holding a UUID string (what a client without
    decode_responses reads back) are the same id. Any other type is a mistake, not an
    unknown id: TypeError, naming it.
    """
    if isinstance(thread_id, str):
        text = thread_id
    elif isinstance(thread_id, uuid.UUID):
        return str(thread_id)
    elif isinstance(thread_id, bytes | bytearray):
        try:
            text = bytes(thread_id).decode("ascii")
        except UnicodeDecodeError:
            return None
    else:
        raise TypeError(
            f"thread id {_short(thread_id)} must be a str, uuid.UUID or bytes holding a UUID, "
            f"not {type(thread_id).__name__}"
        )
    if len(text) == 36 and _UUID.fullmatch(text):
        return text.lower()
    return None


def check_thread_id(thread_id: object) -> str:
    """The canonical form of a thread id to bind; raises if it is not a UUID string."""
    canonical = normalize_id(thread_id)
    if canonical is None:
        raise InvalidThreadIdError(
            f"thread id {thread_id!r} must be a UUID string like 'xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx'"
        )
    return canonical


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
