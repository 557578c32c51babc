"""Bad input (SPEC 4.5): every rule on every method that takes the input.

Each rejected call must raise the named error (a ValueError), name the offending value in
its message, and write nothing. The Lua scripts are also called directly with bad ARGV to
show that they refuse before their first write too (SPEC 5).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

import registry.default
from registry import (
    InvalidConfigError,
    InvalidHopError,
    InvalidNamespaceError,
    InvalidThreadIdError,
    ThreadIdConflictError,
    ThreadRegistry,
    get_registry,
)
from registry.errors import from_script_error
from registry.keys import namespace_keys
from registry.scripts import script
from tests.conftest import keyspace

MakeRegistry = Callable[..., ThreadRegistry]
SEP = "\x1f"
# The input rules, stated here apart from registry.validation (a change there must fail here).
MAX_HOP_BYTES = 256
MAX_HOPS = 32
MAX_CHAIN_BYTES = 2048


def new_id() -> str:
    return str(uuid.uuid4())


def assert_names(exc: BaseException, value: object) -> None:
    """The message names the offending value (long values may be shortened)."""
    assert isinstance(exc, ValueError), f"{type(exc).__name__} is not a ValueError"
    shown = repr(value)[:20]
    assert shown in str(exc), f"message {str(exc)!r} does not name {shown}"


# ---------------------------------------------------------------- hops

BAD_HOPS = [
    pytest.param("", id="empty"),
    pytest.param("a" * 257, id="257-bytes-ascii"),
    pytest.param("é" * 128 + "a", id="257-bytes-2-byte-chars"),
    pytest.param("🙂" * 64 + "a", id="257-bytes-4-byte-chars"),
    pytest.param("日" * 86, id="258-bytes-3-byte-chars"),
    pytest.param("\x00", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\x1fb", id="unit-separator"),
    pytest.param("tab\there", id="tab"),
    pytest.param("\x7f", id="del"),
    pytest.param("a\x85b", id="c1-nel"),
    pytest.param("\x9f", id="c1-last"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param(5, id="int"),
    pytest.param(None, id="none"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param(["a"], id="list"),
]

GOOD_EDGE_HOPS = [
    pytest.param("a" * 256, id="256-bytes-ascii"),
    pytest.param("é" * 128, id="256-bytes-2-byte-chars"),
    pytest.param("🙂" * 64, id="256-bytes-4-byte-chars"),
    pytest.param("日" * 85 + "a", id="256-bytes-3-byte-chars"),
    pytest.param("x", id="one-byte"),
    pytest.param("\xa0nbsp and\u2028line-sep", id="non-control-unicode"),
]


@dataclass
class Seeded:
    reg: ThreadRegistry
    client: Any
    root: str
    thread: str
    table: str


@pytest.fixture
def seeded(make_registry: MakeRegistry, client: Any) -> Seeded:
    """A namespace with some state, so 'nothing written' is checked against real data."""
    reg = make_registry(namespace="acme")
    root = reg.initialize_root("acme")
    thread = reg.extend_chain(root, "console")
    table = reg.initialize_table_root("orders", "acme")
    reg.register_thread(new_id(), "ext", "in")
    return Seeded(reg, client, root, thread, table)


HOP_CALLS: dict[str, Callable[[Seeded, Any], Any]] = {
    "get_or_create-seq": lambda s, h: s.reg.get_or_create(["console", h]),
    "get_or_create-seq-only": lambda s, h: s.reg.get_or_create([h]),
    "get_or_create-tuple": lambda s, h: s.reg.get_or_create(("a", "b", h)),
    "extend_chain": lambda s, h: s.reg.extend_chain(s.thread, h),
    "extend_chain-unknown-current": lambda s, h: s.reg.extend_chain(new_id(), h),
    "start_chain-initiator": lambda s, h: s.reg.start_chain(h, "router"),
    "start_chain-target": lambda s, h: s.reg.start_chain("console", h),
    "register_thread-initiator": lambda s, h: s.reg.register_thread(new_id(), h, "router"),
    "register_thread-target": lambda s, h: s.reg.register_thread(new_id(), "console", h),
    "initialize_root": lambda s, h: s.reg.initialize_root(h),
    "initialize_table_root-table": lambda s, h: s.reg.initialize_table_root(h, "acme"),
    "initialize_table_root-organism": lambda s, h: s.reg.initialize_table_root("users", h),
    "get_table_root": lambda s, h: s.reg.get_table_root(h),
}


@pytest.mark.parametrize("hop", BAD_HOPS)
def test_bad_hop_rejected_everywhere(seeded: Seeded, hop: Any) -> None:
    """Every method that takes a hop, one after another on the same seeded namespace."""
    problems: list[str] = []
    for method, call in HOP_CALLS.items():
        before = keyspace(seeded.client)
        try:
            call(seeded, hop)
        except InvalidHopError as exc:
            if not isinstance(exc, ValueError) or repr(hop)[:20] not in str(exc):
                problems.append(f"{method}: message {str(exc)!r} does not name {hop!r}")
        except Exception as exc:
            problems.append(f"{method}: raised {type(exc).__name__}: {exc}")
        else:
            problems.append(f"{method}: accepted the hop")
        if keyspace(seeded.client) != before:
            problems.append(f"{method}: wrote something")
    assert problems == []


@pytest.mark.parametrize(
    "hop",
    [p for p in BAD_HOPS if isinstance(p.values[0], str) and "." not in p.values[0]],
)
def test_bad_hop_in_dotted_str_chain(seeded: Seeded, hop: str) -> None:
    before = keyspace(seeded.client)
    for chain in (f"console.{hop}", f"{hop}.console", hop):
        with pytest.raises(InvalidHopError) as info:
            seeded.reg.get_or_create(chain)
        assert_names(info.value, hop)
    assert keyspace(seeded.client) == before


@pytest.mark.parametrize("chain", ["a..b", ".a", "a.", ".", "a.b..", "..."])
def test_empty_hop_in_dotted_str_chain(seeded: Seeded, chain: str) -> None:
    before = keyspace(seeded.client)
    with pytest.raises(InvalidHopError) as info:
        seeded.reg.get_or_create(chain)
    assert "''" in str(info.value)
    assert keyspace(seeded.client) == before


@pytest.mark.parametrize("hop", GOOD_EDGE_HOPS)
def test_edge_hops_accepted_everywhere(seeded: Seeded, hop: str) -> None:
    problems: list[str] = []
    for method, call in HOP_CALLS.items():
        if method == "initialize_root":  # the seeded namespace has its root already
            continue
        try:
            call(seeded, hop)
        except Exception as exc:
            problems.append(f"{method}: raised {type(exc).__name__}: {exc}")
    assert problems == []


@pytest.mark.parametrize("hop", GOOD_EDGE_HOPS)
def test_edge_hops_round_trip(make_registry: MakeRegistry, hop: str) -> None:
    reg = make_registry()
    root = reg.initialize_root(hop)
    assert reg.lookup_hops(root) == ("system", hop)
    tid = reg.extend_chain(root, hop)
    assert reg.lookup_hops(tid) == ("system", hop, hop)
    assert reg.prune_for_response(tid) == (hop, root)
    seq = reg.get_or_create([hop, hop, "x"])
    assert reg.lookup_hops(seq) == (hop, hop, "x")
    table = reg.initialize_table_root(hop, "org")
    assert reg.get_table_root(hop) == table
    assert reg.get_table_for_thread(reg.extend_chain(table, "w")) == hop


# ---------------------------------------------------------------- chains


@pytest.mark.parametrize(
    "chain",
    [
        pytest.param("", id="empty-str"),
        pytest.param([], id="empty-list"),
        pytest.param((), id="empty-tuple"),
    ],
)
def test_empty_chain_rejected(seeded: Seeded, chain: Any) -> None:
    before = keyspace(seeded.client)
    with pytest.raises(InvalidHopError) as info:
        seeded.reg.get_or_create(chain)
    assert_names(info.value, chain)
    assert keyspace(seeded.client) == before


@pytest.mark.parametrize(
    "chain",
    [
        pytest.param(5, id="int"),
        pytest.param(None, id="none"),
        pytest.param(b"a.b", id="bytes"),
        pytest.param(bytearray(b"a.b"), id="bytearray"),
        pytest.param({"a", "b"}, id="set"),
    ],
)
def test_chain_of_wrong_type_rejected(seeded: Seeded, chain: Any) -> None:
    before = keyspace(seeded.client)
    with pytest.raises(InvalidHopError) as info:
        seeded.reg.get_or_create(chain)
    assert_names(info.value, chain)
    assert keyspace(seeded.client) == before


def hops(n: int) -> list[str]:
    return [f"h{i}" for i in range(n)]


def long_hops(size: int) -> list[str]:
    """Hops of 1 to 256 bytes (the first ones long) whose chain is exactly `size` bytes."""
    out: list[str] = []
    while size > 0:
        n = min(MAX_HOP_BYTES, size)
        if size - n == 1:  # a lone byte would be a separator with no hop after it
            n -= 1
        out.append(chr(ord("a") + len(out)) * n)
        size -= n + 1
    assert len(SEP.join(out)) == sum(len(h) for h in out) + len(out) - 1
    return out


def as_form(chain: list[str], form: str) -> Any:
    """A chain as a list of hops, or dotted (hops without dots only)."""
    return chain if form == "list" else ".".join(chain)


# (a chain one past a limit, the words its error must name, the chain exactly at it)
LIMITS = [
    pytest.param(hops(MAX_HOPS + 1), [f"{MAX_HOPS + 1} hops", f"1 to {MAX_HOPS}"], hops(MAX_HOPS), id="hops"),
    pytest.param(
        long_hops(MAX_CHAIN_BYTES + 1),
        [f"{MAX_CHAIN_BYTES + 1} bytes", f"at most {MAX_CHAIN_BYTES} bytes"],
        long_hops(MAX_CHAIN_BYTES),
        id="bytes",
    ),
]


@pytest.mark.parametrize(("over", "words", "at"), LIMITS)
@pytest.mark.parametrize("form", ["list", "dotted"])
def test_chain_over_a_limit_rejected_at_the_limit_accepted(
    seeded: Seeded, form: str, over: list[str], words: list[str], at: list[str]
) -> None:
    before = keyspace(seeded.client)
    with pytest.raises(InvalidHopError) as info:
        seeded.reg.get_or_create(as_form(over, form))
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, ValueError)
    assert keyspace(seeded.client) == before
    tid = seeded.reg.get_or_create(as_form(at, form))
    assert seeded.reg.lookup_hops(tid) == tuple(at)


@pytest.mark.parametrize("form", ["list", "dotted"])
def test_multi_byte_characters_count_as_their_utf8_bytes(seeded: Seeded, form: str) -> None:
    wide = ["é" * 128] * 7 + ["é" * 102]  # 7 * 257 + 204 = 2,003 bytes: under
    assert seeded.reg.lookup_hops(seeded.reg.get_or_create(as_form(wide, form))) == tuple(wide)
    with pytest.raises(InvalidHopError, match="2049 bytes"):
        seeded.reg.get_or_create(as_form([*wide, "é" * 22 + "a"], form))  # + 1 + 45 bytes
    at_limit = [*wide, "é" * 22]  # + 1 + 44 bytes = 2,048
    assert seeded.reg.lookup_hops(seeded.reg.get_or_create(as_form(at_limit, form))) == tuple(at_limit)


def test_extend_past_the_hop_limit_rejected_by_the_server(seeded: Seeded) -> None:
    reg = seeded.reg
    below = reg.get_or_create(hops(MAX_HOPS - 1))
    full = reg.extend_chain(below, "last")
    assert reg.lookup_hops(full) == (*hops(MAX_HOPS - 1), "last")
    before = keyspace(seeded.client)
    with pytest.raises(InvalidHopError) as info:
        reg.extend_chain(full, "one-too-many")
    assert isinstance(info.value, ValueError)
    assert full in str(info.value)
    assert f"more than {MAX_HOPS} hops" in str(info.value)
    assert keyspace(seeded.client) == before
    assert reg.prune_for_response(full) == (f"h{MAX_HOPS - 2}", below)


def test_extend_past_the_byte_limit_rejected_by_the_server(seeded: Seeded) -> None:
    reg = seeded.reg
    chain = long_hops(MAX_CHAIN_BYTES - 11)
    tid = reg.get_or_create(chain)
    full = reg.extend_chain(tid, "x" * 10)  # exactly the limit
    assert reg.lookup_hops(full) == (*chain, "x" * 10)
    before = keyspace(seeded.client)
    with pytest.raises(InvalidHopError) as info:
        reg.extend_chain(tid, "x" * 11)
    assert tid in str(info.value)
    assert f"{MAX_CHAIN_BYTES + 1} bytes; at most {MAX_CHAIN_BYTES}" in str(info.value)
    assert keyspace(seeded.client) == before


# ---------------------------------------------------------------- namespaces

BAD_NAMESPACES = [
    pytest.param("", id="empty"),
    pytest.param("a" * 65, id="65-chars"),
    pytest.param("*", id="star"),
    pytest.param("{", id="open-brace"),
    pytest.param("}", id="close-brace"),
    pytest.param("a{b}", id="hash-tag"),
    pytest.param("a b", id="space"),
    pytest.param("ns\n", id="trailing-newline"),
    pytest.param("日本", id="unicode"),
    pytest.param("a/b", id="slash"),
    pytest.param(5, id="int"),
    pytest.param(None, id="none"),
]


@pytest.mark.parametrize("namespace", BAD_NAMESPACES)
def test_bad_namespace_rejected(client: Any, namespace: Any) -> None:
    before = keyspace(client)
    with pytest.raises(InvalidNamespaceError) as info:
        ThreadRegistry(client, namespace=namespace)
    assert isinstance(info.value, InvalidHopError)
    assert_names(info.value, namespace)
    assert keyspace(client) == before


@pytest.mark.parametrize("namespace", BAD_NAMESPACES)
def test_bad_namespace_rejected_by_get_registry(
    client: Any, namespace: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry.default, "_instance", None)
    with pytest.raises(InvalidNamespaceError):
        get_registry(client, namespace=namespace)
    assert registry.default._instance is None


@pytest.mark.parametrize("namespace", ["a" * 64, "a", "A-z_0.9:x", "tenant:42", "..", "-"])
def test_good_namespace_accepted(client: Any, namespace: str) -> None:
    reg = ThreadRegistry(client, namespace=namespace)
    tid = reg.get_or_create("a.b")
    assert reg.lookup(tid) == "a.b"


# ---------------------------------------------------------------- ttl


@pytest.mark.parametrize(
    "ttl",
    [
        pytest.param(0, id="zero"),
        pytest.param(0.0, id="zero-float"),
        pytest.param(-1, id="negative"),
        pytest.param(-0.5, id="negative-float"),
        pytest.param(0.0001, id="below-a-millisecond"),
        pytest.param("10", id="str"),
        pytest.param(True, id="bool"),
        pytest.param([10], id="list"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="inf"),
        pytest.param(float("-inf"), id="minus-inf"),
        pytest.param(1e11, id="1e11-seconds"),
        pytest.param(2**48 / 1000, id="2^48-ms"),
        pytest.param(1e14, id="1e14-seconds"),
        pytest.param(10 * 365 * 86400 + 1, id="ten-years-and-a-second"),
    ],
)
def test_bad_ttl_rejected(client: Any, ttl: Any) -> None:
    before = keyspace(client)
    with pytest.raises(InvalidConfigError) as info:
        ThreadRegistry(client, namespace="acme", ttl=ttl)
    assert_names(info.value, ttl)
    assert keyspace(client) == before


@pytest.mark.parametrize("ttl", [None, 1, 0.001, 2.5, 86400 * 365, 10 * 365 * 86400])
def test_good_ttl_accepted(client: Any, ttl: float | None) -> None:
    reg = ThreadRegistry(client, namespace="acme", ttl=ttl)
    assert reg.ttl == ttl
    tid = reg.get_or_create("a.b")
    # the longest ttl's deadlines still read back as whole milliseconds, in every view
    rows = {row.thread_id: row for row in reg.threads()}
    if ttl is not None and ttl >= 1:
        deadline = rows[tid].deadline_ms
        assert deadline is not None and 0 < deadline - time.time() * 1000 <= ttl * 1000 + 1000
    if ttl is None or ttl >= 1:  # a 1 ms mapping may be gone by the next call
        assert reg.lookup(tid) == "a.b"


# ---------------------------------------------------------------- thread ids

_SAMPLE = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
MALFORMED_IDS = [
    pytest.param("", id="empty"),
    pytest.param("nope", id="word"),
    pytest.param(_SAMPLE.replace("-", ""), id="no-dashes"),
    pytest.param("{" + _SAMPLE + "}", id="braces"),
    pytest.param("urn:uuid:" + _SAMPLE, id="urn"),
    pytest.param(_SAMPLE[:-1] + "g", id="non-hex"),
    pytest.param(" " + _SAMPLE, id="leading-space"),
    pytest.param(_SAMPLE + "\n", id="trailing-newline"),
    pytest.param(_SAMPLE[:-1], id="too-short"),
    pytest.param(_SAMPLE + "0", id="too-long"),
    pytest.param(_SAMPLE.replace("-", "_"), id="underscores"),
    pytest.param(b"nope", id="bytes-word"),
    pytest.param(b"\xff" * 36, id="bytes-not-ascii"),
]
# Not an id of any kind: a mistake in the caller, reported as such (not as an unknown id).
WRONG_TYPE_IDS = [
    pytest.param(None, id="none"),
    pytest.param(5, id="int"),
    pytest.param(1.5, id="float"),
    pytest.param([_SAMPLE], id="list"),
    pytest.param(object(), id="object"),
]


def test_register_thread_malformed_id(seeded: Seeded) -> None:
    for param in MALFORMED_IDS:
        (thread_id,) = param.values
        before = keyspace(seeded.client)
        with pytest.raises(InvalidThreadIdError) as info:
            seeded.reg.register_thread(thread_id, "console", "router")
        assert_names(info.value, thread_id)
        assert keyspace(seeded.client) == before


@pytest.mark.parametrize("thread_id", WRONG_TYPE_IDS)
def test_an_id_of_another_type_is_a_type_error_everywhere(seeded: Seeded, thread_id: Any) -> None:
    """None, ints and the like used to be taken as unknown ids: extend_chain then made a
    root-less one-hop chain, prune answered (None, None). Every method says it instead."""
    reg = seeded.reg
    before = keyspace(seeded.client)
    calls: list[Callable[[], object]] = [
        lambda: reg.lookup(thread_id),
        lambda: reg.lookup_hops(thread_id),
        lambda: reg.get_table_for_thread(thread_id),
        lambda: reg.prune_for_response(thread_id),
        lambda: reg.cleanup(thread_id),
        lambda: reg.extend_chain(thread_id, "next"),
        lambda: reg.register_thread(thread_id, "console", "router"),
        lambda: reg.batch().lookup(thread_id),
        lambda: reg.batch().extend_chain(thread_id, "next"),
    ]
    for call in calls:
        with pytest.raises(TypeError) as info:
            call()
        assert type(thread_id).__name__ in str(info.value)
    assert keyspace(seeded.client) == before


def test_uuid_objects_and_bytes_are_the_same_id(seeded: Seeded) -> None:
    """A bus that reads ids with a client returning bytes, or holds uuid.UUID objects,
    gets the same answers as with the str."""
    reg = seeded.reg
    root = reg.initialize_root("acme")
    tid = reg.extend_chain(root, "console")
    for same in (uuid.UUID(tid), tid.encode(), bytearray(tid.upper().encode())):
        assert reg.lookup(same) == "system.acme.console"
        assert reg.lookup_hops(same) == ("system", "acme", "console")
        assert reg.extend_chain(same, "router") == reg.extend_chain(tid, "router")
        assert reg.prune_for_response(same) == ("acme", root)
        assert reg.batch().lookup(same).execute() == ["system.acme.console"]
    bound = uuid.uuid4()
    assert reg.register_thread(bound, "ext", "other") == str(bound)
    assert reg.register_thread(str(bound).encode(), "ext", "other") == str(bound)
    reg.cleanup(str(bound).encode())
    assert reg.lookup(bound) is None


def test_reads_and_navigation_with_malformed_id_act_as_unknown(seeded: Seeded) -> None:
    reg = seeded.reg
    unknown = reg.extend_chain(new_id(), "next")
    for param in MALFORMED_IDS:
        (thread_id,) = param.values
        before = keyspace(seeded.client)
        assert reg.lookup(thread_id) is None
        assert reg.lookup_hops(thread_id) is None
        assert reg.get_table_for_thread(thread_id) is None
        assert reg.prune_for_response(thread_id) == (None, None)
        assert reg.cleanup(thread_id) is None
        assert keyspace(seeded.client) == before
        assert reg.extend_chain(thread_id, "next") == unknown
        assert reg.lookup_hops(unknown) == ("next",)


# ---------------------------------------------------------------- the scripts themselves

TTL = "60000"


@dataclass
class Raw:
    client: Any
    keys: tuple[str, str, str]
    ctx: dict[str, str]
    state: str

    def run(self, name: str, *argv: str | bytes) -> Any:
        return self.client.evalsha(script(name).sha, 3, *self.keys, *argv)


@pytest.fixture(params=["empty", "populated"])
def raw(request: pytest.FixtureRequest, client: Any) -> Iterator[Raw]:
    for name in (
        "get_or_create",
        "extend_chain",
        "register_thread",
        "initialize_root",
        "initialize_table_root",
        "prune_for_response",
        "gc",
        "dump",
        "check_page",
        "stats_page",
    ):
        assert client.script_load(script(name).source) == script(name).sha
    ctx = {"thread": new_id(), "t256": new_id()}
    if request.param == "populated":
        reg = ThreadRegistry(client, namespace="acme")
        root = reg.initialize_root("acme")
        ctx["thread"] = reg.extend_chain(root, "console")
        ctx["t256"] = reg.get_or_create(hops(MAX_HOPS))
        reg.initialize_table_root("orders", "acme")
        reg.register_thread(new_id(), "ext", "in")
    yield Raw(client, namespace_keys("acme"), ctx, str(request.param))


def _c() -> str:
    return new_id()


# (script, argv builder, expected code). argv builders get the context of `raw`.
RAW_CASES: list[Any] = [
    ("get_or_create", lambda x: [TTL, _c(), "0", ""], "BADHOP"),
    ("get_or_create", lambda x: [TTL, _c(), "0", "a" + SEP + SEP + "b"], "BADHOP"),
    ("get_or_create", lambda x: [TTL, _c(), "0", SEP + "a"], "BADHOP"),
    ("get_or_create", lambda x: [TTL, _c(), "0", "a" * 257], "BADHOP"),
    ("get_or_create", lambda x: [TTL, _c(), "0", "a\nb"], "BADHOP"),
    ("get_or_create", lambda x: [TTL, _c(), "0", "a\x00b"], "BADHOP"),
    ("get_or_create", lambda x: [TTL, _c(), "0", "ok" + SEP + "\x7f"], "BADHOP"),
    ("get_or_create", lambda x: [TTL, _c(), "0", "a\x85b".encode()], "BADHOP"),
    ("get_or_create", lambda x: [TTL, _c(), "0", b"\xff\xfe"], "BADHOP"),
    ("get_or_create", lambda x: [TTL, _c(), "0", b"ok\xc3"], "BADHOP"),
    ("get_or_create", lambda x: [TTL, _c(), "0", SEP.join(hops(MAX_HOPS + 1))], "BADCHAIN"),
    ("get_or_create", lambda x: [TTL, _c(), "0", SEP.join(long_hops(MAX_CHAIN_BYTES + 1))], "BADCHAIN"),
    ("get_or_create", lambda x: ["0", _c(), "0", "a"], "BADARG"),
    ("get_or_create", lambda x: ["-5", _c(), "0", "a"], "BADARG"),
    ("get_or_create", lambda x: ["abc", _c(), "0", "a"], "BADARG"),
    ("get_or_create", lambda x: ["1.5", _c(), "0", "a"], "BADARG"),
    ("get_or_create", lambda x: [TTL, "nope", "0", "a"], "BADID"),
    ("get_or_create", lambda x: [TTL, _c().upper(), "0", "a"], "BADID"),
    ("extend_chain", lambda x: [TTL, _c(), "128", x["thread"], ""], "BADHOP"),
    ("extend_chain", lambda x: [TTL, _c(), "128", x["thread"], "a" + SEP + "b"], "BADHOP"),
    ("extend_chain", lambda x: [TTL, _c(), "0", x["thread"], "a" * 257], "BADHOP"),
    ("extend_chain", lambda x: ["0", _c(), "0", x["thread"], "a"], "BADARG"),
    ("extend_chain", lambda x: [TTL, "", "0", x["thread"], "a"], "BADID"),
    ("register_thread", lambda x: [TTL, _c(), "0", "nope", "a", "b"], "BADID"),
    ("register_thread", lambda x: [TTL, _c(), "0", _c().upper(), "a", "b"], "BADID"),
    ("register_thread", lambda x: [TTL, _c(), "0", _c(), "", "b"], "BADHOP"),
    ("register_thread", lambda x: [TTL, _c(), "0", _c(), "a", "b" + SEP + "c"], "BADHOP"),
    ("register_thread", lambda x: [TTL, _c(), "0", _c(), "a\x1b", "b"], "BADHOP"),
    ("register_thread", lambda x: ["x", _c(), "0", _c(), "a", "b"], "BADARG"),
    ("initialize_root", lambda x: [TTL, _c(), "0", ""], "BADHOP"),
    ("initialize_root", lambda x: [TTL, _c(), "0", "x" + SEP + "y"], "BADHOP"),
    ("initialize_root", lambda x: ["0", _c(), "0", "acme"], "BADARG"),
    ("initialize_root", lambda x: [TTL, "bad", "0", "acme"], "BADID"),
    ("initialize_table_root", lambda x: [TTL, _c(), "0", "", "acme"], "BADHOP"),
    ("initialize_table_root", lambda x: [TTL, _c(), "0", "t", "a\x00"], "BADHOP"),
    ("initialize_table_root", lambda x: [TTL, _c(), "0", "t" + SEP + "u", "acme"], "BADHOP"),
    ("initialize_table_root", lambda x: [TTL, "x", "0", "t", "acme"], "BADID"),
    ("prune_for_response", lambda x: ["0", _c(), "0", x["thread"]], "BADARG"),
    ("prune_for_response", lambda x: [TTL, "bad", "0", x["thread"]], "BADID"),
    # numbers a script must refuse before writing: ttl out of range, a sweep count that
    # is not a whole number (they used to error only after the mapping was written)
    ("get_or_create", lambda x: ["inf", _c(), "0", "a"], "BADARG"),
    ("get_or_create", lambda x: ["1e300", _c(), "0", "a"], "BADARG"),
    ("get_or_create", lambda x: ["100000000000000", _c(), "0", "a"], "BADARG"),
    ("get_or_create", lambda x: ["nan", _c(), "0", "a"], "BADARG"),
    ("get_or_create", lambda x: [TTL, _c(), "1.5", "a"], "BADARG"),
    ("get_or_create", lambda x: [TTL, _c(), "1e300", "a"], "BADARG"),
    ("get_or_create", lambda x: [TTL, _c(), "-1", "a"], "BADARG"),
    ("get_or_create", lambda x: [TTL, _c(), "x", "a"], "BADARG"),
    ("extend_chain", lambda x: [TTL, _c(), "inf", x["thread"], "a"], "BADARG"),
    ("register_thread", lambda x: ["1e300", _c(), "0", _c(), "a", "b"], "BADARG"),
    ("prune_for_response", lambda x: [TTL, _c(), "1.5", x["thread"]], "BADARG"),
    ("initialize_root", lambda x: [TTL, _c(), "1e300", "acme"], "BADARG"),
    ("gc", lambda x: ["0", "0", "10"], "BADARG"),
    ("gc", lambda x: ["1.5", "0", "10"], "BADARG"),
    ("gc", lambda x: ["100", "0", "1e300"], "BADARG"),
    ("gc", lambda x: ["100", "Lx", "10"], "BADARG"),
    ("dump", lambda x: ["t", "0", "0"], "BADARG"),
    ("dump", lambda x: ["t", "0", "inf"], "BADARG"),
    ("dump", lambda x: ["p", "L-1", "10"], "BADARG"),
    # counts over what one call may do: a sweep, a gc step or a page is bounded so that no
    # call holds the shard for more than a millisecond (docs/design.md, "Work per call")
    ("get_or_create", lambda x: [TTL, _c(), "129", "a"], "BADARG"),
    ("extend_chain", lambda x: [TTL, _c(), "10000", x["thread"], "a"], "BADARG"),
    ("gc", lambda x: ["129", "0", "10"], "BADARG"),
    ("gc", lambda x: ["100", "0", "129"], "BADARG"),
    ("dump", lambda x: ["t", "0", "501"], "BADARG"),
    ("check_page", lambda x: ["t", "0", "101"], "BADARG"),
    ("stats_page", lambda x: ["t", "0", "501"], "BADARG"),
]


def _raw_id(case: Any) -> str:
    name, build, code = case
    argv = build({"thread": "T", "t256": "T256"})
    if name in ("gc", "dump", "check_page", "stats_page"):
        shown = "-".join(argv)
    elif code in ("BADARG", "BADID"):
        shown = f"{argv[0][:6]}-{argv[2][:6]}"
    else:
        shown = "-".join(repr(a)[:12] for a in argv[3:])
    return f"{name}-{code}-{shown}"


@pytest.mark.parametrize("case", RAW_CASES, ids=[_raw_id(c) for c in RAW_CASES])
def test_script_rejects_before_writing(raw: Raw, case: Any) -> None:
    name, build, code = case
    before = keyspace(raw.client)
    with pytest.raises(redis.ResponseError) as info:
        raw.run(name, *build(raw.ctx))
    message = str(info.value)
    assert message.startswith(code + " "), message
    mapped = from_script_error(message)
    assert isinstance(mapped, ValueError)
    assert keyspace(raw.client) == before


def test_script_rejects_extending_a_chain_at_the_hop_limit(raw: Raw) -> None:
    before = keyspace(raw.client)
    if raw.state == "populated":  # t256 is a live chain of MAX_HOPS hops
        with pytest.raises(redis.ResponseError) as info:
            raw.run("extend_chain", TTL, _c(), "128", raw.ctx["t256"], "x")
        assert str(info.value).startswith("BADCHAIN ")
        assert isinstance(from_script_error(str(info.value)), InvalidHopError)
        assert keyspace(raw.client) == before
    else:  # empty: an unknown current gives the one-hop chain
        tid = raw.run("extend_chain", TTL, _c(), "0", raw.ctx["t256"], "x")
        assert ThreadRegistry(raw.client, namespace="acme").lookup_hops(tid.decode()) == ("x",)


def test_script_error_codes_map_to_value_errors() -> None:
    assert isinstance(from_script_error("BADHOP x"), InvalidHopError)
    assert isinstance(from_script_error("BADCHAIN x"), InvalidHopError)
    assert isinstance(from_script_error("BADID x"), InvalidThreadIdError)
    assert isinstance(from_script_error("BADARG x"), InvalidConfigError)
    assert isinstance(from_script_error("IDCONFLICT x"), ThreadIdConflictError)
    assert from_script_error("ERR something else") is None


# A busy thread's touch is answered on the script's hot path (lua/_plain.lua), from a few
# reads and before any helper is made. Its argument checks only accept: every bad
# argument must still be refused, before any write, when the chain is live and was just
# touched (so the hot path would answer a good call).
HOT_BAD: list[Any] = [
    ("ttl 0", ["0", None, "0"], "BADARG"),
    ("ttl 1.5", ["1.5", None, "0"], "BADARG"),
    ("ttl inf", ["inf", None, "0"], "BADARG"),
    ("ttl nan", ["nan", None, "0"], "BADARG"),
    ("ttl negative", ["-5", None, "0"], "BADARG"),
    ("ttl over ten years", ["315360000001", None, "0"], "BADARG"),
    ("random id", [TTL, "not-a-uuid", "0"], "BADID"),
    ("random id upper case", [TTL, "0FA3C2B4-1D2E-4F50-8A6B-7C8D9E0F1A2B", "0"], "BADID"),
    ("sweep count", [TTL, None, "1.5"], "BADARG"),
    ("sweep count", [TTL, None, "x"], "BADARG"),
    ("sweep count", [TTL, None, "129"], "BADARG"),
    ("sweep count", [TTL, None, "-1"], "BADARG"),
    ("sweep count", [TTL, None, "inf"], "BADARG"),
]


@pytest.mark.parametrize("backend", ["redis", "fake", "fake-plain"], indirect=True)
@pytest.mark.parametrize(
    ("what", "head", "code"), HOT_BAD, ids=[f"{c[0]}-{c[1][0]}-{c[1][2]}" for c in HOT_BAD]
)
def test_bad_arguments_are_refused_on_a_busy_thread(
    client: Any, what: str, head: list[Any], code: str
) -> None:
    reg = ThreadRegistry(client, namespace="acme", ttl=3600)
    router = reg.extend_chain(reg.extend_chain(reg.initialize_root("acme"), "console"), "router")
    worker = reg.extend_chain(router, "worker")
    leaf = reg.extend_chain(worker, "leaf")
    keys = namespace_keys("acme")
    argv = [a if a is not None else new_id() for a in head]
    calls = {
        "extend_chain": [*argv, router, "worker"],
        "get_or_create": [*argv, SEP.join(["system", "acme", "console", "router", "worker"])],
        "prune_for_response": [*argv, leaf],
    }
    for name, args in calls.items():
        client.script_load(script(name).source)
        good = [TTL, new_id(), "0", *args[3:]]
        assert client.evalsha(script(name).sha, 3, *keys, *good)  # a good call: answered hot
        before = keyspace(client)
        with pytest.raises(redis.ResponseError) as info:
            client.evalsha(script(name).sha, 3, *keys, *args)
        assert str(info.value).startswith(code + " "), (name, what, str(info.value))
        assert keyspace(client) == before


@pytest.mark.parametrize("backend", ["redis", "fake", "fake-plain"], indirect=True)
def test_flags_and_hops_are_refused_on_a_busy_thread(client: Any) -> None:
    reg = ThreadRegistry(client, namespace="acme", ttl=3600)
    router = reg.extend_chain(reg.initialize_root("acme"), "router")
    leaf = reg.extend_chain(reg.extend_chain(router, "worker"), "leaf")
    keys = namespace_keys("acme")
    # (script, a good call's arguments, the same with one bad, the error code)
    cases = [
        ("extend_chain", [router, "worker"], [router, "worker", "yes"], "BADARG"),  # strict flag
        ("extend_chain", [router, "worker"], [router, "worker" + SEP], "BADHOP"),
        ("prune_for_response", [leaf], [leaf, "2"], "BADARG"),  # strict flag
        ("prune_for_response", [leaf], [leaf, "", "x"], "BADARG"),  # drop flag
    ]
    for name, good, rest, code in cases:
        client.script_load(script(name).source)
        client.evalsha(script(name).sha, 3, *keys, TTL, new_id(), "0", *good)  # answered hot
        before = keyspace(client)
        with pytest.raises(redis.ResponseError) as info:
            client.evalsha(script(name).sha, 3, *keys, TTL, new_id(), "0", *rest)
        assert str(info.value).startswith(code + " "), (name, rest, str(info.value))
        assert keyspace(client) == before
