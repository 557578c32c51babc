"""reg.check(repair=False): verify a namespace's invariants in bounded pages, and mend
what can be mended without guessing.

The pages are lua/check_page.lua (meta, then the threads hash, then the overrides
hash, each walked by cursor; then the keys' facts); each repair is one lua/repair.lua
run, which verifies its problem again before it writes, so a repair racing live
traffic acts only on what is still wrong. What each kind of problem means and what its
repair does is in lua/_check.lua and docs/operations.md. The steps are a generator of
Calls, driven by the sync and async registries alike (their `_drive`).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from .operations import Call, Operations, text
from .scripts import script

CHECK_PAGE = 100  # entries per page (the most check_page.lua takes): each live mapping costs a digest or two
# Problems no repair touches: they need a person (a layout this version does not read,
# a namespace without its salt, fields of an unknown meaning).
NOT_REPAIRABLE = frozenset({"layout", "unknown"})
# Findings the design allows in one case check cannot tell apart: cleanup() removes a
# mapping without leaving a floor, so a later, shorter floor of that chain may sit under
# a descendant that outlives it (design.md, Expiry). Reported as notices, not problems;
# repair still raises them (raising a floor changes no mapping).
NOTICE_KINDS = frozenset({"ancestor"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: its kind, where (`key` 'meta'/'threads'/'overrides'/'keys' and
    the field: a thread id, a derived id, a meta field), and what is wrong."""

    kind: str
    key: str
    field: str
    detail: str
    repaired: str | None = None  # what repair did; None: not repaired (or not asked)

    def line(self) -> str:
        """``kind: key 'field': detail`` (and what repair did), for one line of output."""
        where = f"{self.key} {self.field!r}" if self.field else self.key
        done = f" [repaired: {self.repaired}]" if self.repaired else ""
        return f"{self.kind}: {where}: {self.detail}{done}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What check() found (and, with repair=True, did)."""

    namespace: str
    problems: tuple[Problem, ...]
    entries: int  # entries examined
    empty: bool  # the namespace holds no key at all
    notices: tuple[Problem, ...] = ()  # NOTICE_KINDS: worth knowing, not unsound

    @property
    def sound(self) -> bool:
        """No problem found."""
        return not self.problems

    @property
    def unrepaired(self) -> tuple[Problem, ...]:
        """The problems repair did not mend (all of them when repair was not asked)."""
        return tuple(p for p in self.problems if not p.repaired)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "namespace": self.namespace,
            "sound": self.sound,
            "empty": self.empty,
            "entries": self.entries,
            "problems": [_json(p) for p in self.problems],
            "notices": [_json(p) for p in self.notices],
        }


SLACK_MS = 1000


def _json(p: Problem) -> dict[str, Any]:
    return {"kind": p.kind, "key": p.key, "field": p.field, "detail": p.detail, "repaired": p.repaired}


_KEYS = {"m": "meta", "t": "threads", "o": "overrides"}


def page_call(kind: str, cursor: str, count: int) -> Call[list[Any]]:
    return Call(script("check_page"), (kind, cursor, str(count)), list)


def repair_call(where: str, field: str, latest: str = "") -> Call[str]:
    return Call(script("repair"), (where, field, latest), lambda r: text(r[0]), writes=True)


def _printable(field: Any) -> str:
    raw = field if isinstance(field, bytes) else str(field).encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace").replace("\0", "\\0")


def run_check(
    ops: Operations, repair: bool = False, page: int = CHECK_PAGE
) -> Generator[Call[Any], Any, CheckResult]:
    """The steps of check(): every page, then the keys, then (with `repair`) one repair
    run per problem found."""
    first = yield page_call("k", "0", 1)
    layout = text(first[9]) if first[9] else ""
    if int(first[8]) == 1 and layout != "2":
        # Written by another version: its entries mean other things; nothing is read or mended.
        problem = Problem(
            "layout", "meta", "v", f"layout {layout or '1'} is not the layout 2 this version reads"
        )
        return CheckResult(ops.namespace, (problem,), 0, False)
    found: list[tuple[str, str, Any, str]] = []  # kind, where, raw field, detail
    latest = 0
    entries = 0
    for where in ("m", "t", "o"):
        cursor = "0"
        while True:
            reply = yield page_call(where, cursor, page)
            cursor = text(reply[0])
            if reply[1]:
                latest = max(latest, int(reply[1]))
            entries += int(reply[2])
            for i in range(3, len(reply), 4):
                found.append((text(reply[i]), where, reply[i + 1], text(reply[i + 2])))
            if cursor == "0":
                break
    facts = yield page_call("k", "0", 1)
    now, e_meta, e_threads, e_over = (int(x) for x in facts[:4])
    ttl_meta, ttl_threads, ttl_over = (int(x) for x in facts[4:7])
    x = int(facts[7]) if facts[7] else 0
    has_salt = int(facts[8]) == 1
    keys: list[str] = []
    if (e_threads or any(w == "t" for _, w, _, _ in found)) and e_meta and not has_salt:
        keys.append("the namespace has entries but no salt: its derived ids cannot be checked")
    if ttl_meta >= 0:
        keys.append(f"meta expires in {ttl_meta} ms: the salt, roots and permanent threads would go with it")
    if e_threads != e_over:
        keys.append("the threads and overrides hashes must exist together (placeholders)")
    if e_threads and ttl_threads >= 0:
        expires = now + ttl_threads
        if latest and expires < latest:
            keys.append(f"the threads key expires at {expires}, before its latest deadline {latest}")
        # PTTL counts from the server's clock a moment after the script's TIME: a
        # second of slack where two instants were set equal.
        if x > expires + SLACK_MS:
            keys.append(f"the threads key expires at {expires}, before the {x} meta's x promises writes")
        if ttl_over < 0 or now + ttl_over < expires - SLACK_MS:
            keys.append("the overrides key expires before the threads key")
    elif e_threads and ttl_over >= 0:
        keys.append("the overrides key expires while the threads key does not")
    problems: list[Problem] = []
    for kind, where, field, detail in found:
        fixed: str | None = None
        if repair and kind not in NOT_REPAIRABLE:
            fixed = (yield repair_call(where, field)) or "(no longer wrong: nothing written)"
        problems.append(Problem(kind, _KEYS[where], _printable(field), detail, fixed))
    if keys:
        fixed = None
        if repair:
            fixed = (yield repair_call("k", "", str(latest) if latest else "")) or "(no longer wrong)"
        for detail in keys:
            kind = "layout" if "no salt" in detail else "expiry"
            problems.append(Problem(kind, "keys", "", detail, fixed if kind != "layout" else None))
    empty = not (e_meta or e_threads or e_over)
    notices = tuple(p for p in problems if p.kind in NOTICE_KINDS)
    real = tuple(p for p in problems if p.kind not in NOTICE_KINDS)
    return CheckResult(ops.namespace, real, entries, empty, notices)
