"""Model-based test: random sequences of every operation, real registry vs tests/model.py.

Each step runs one operation on the in-memory model and on a real ThreadRegistry (ttl=None
or a ttl far beyond the test, so nothing expires) and compares the answers, ids up to a
renaming: the first time an id appears it is paired with the id the other side gave, and
from then on the pairing must hold both ways. After every step the whole state is compared
(threads() hops exactly, debug_dump rendered, the instance's root properties).

Runs on a real redis-server (one per module, flushed per example) and on fakeredis.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import fakeredis
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from registry import RegistryError, ThreadRegistry, embedded
from tests.model import ModelRegistry
from tests.servers import RedisServer

TTL_LONG = 10_000_000  # seconds (~115 days): nothing expires during a test


# Hop alphabet: dotted hops, hops that look like roots, key-syntax characters, a 256-byte hop.
def fill_hops(size: int) -> tuple[str, ...]:
    """Hops of at most 256 bytes whose chain is exactly `size` bytes (size >= 1)."""
    out: list[str] = []
    while size > 0:
        n = min(256, size)
        if size - n == 1:  # one byte left would be a separator with no hop after it
            n -= 1
        out.append(str(len(out) % 10) * n)
        size -= n + 1
    return tuple(out)


HOPS = ["a", "b", "calculator.add", "system", "acme", "system.boot", "{*} x:ü", "é" * 128]
PLAIN_HOPS = ["a", "b", "system", "acme", "ü"]
ORGS = ["acme", "globex.io"]
TABLES = ["orders", "system", "a", "calculator.add"]
BAD_HOPS = ["", "x\ny", "tab\there", "\x7f", "\x85", "é" * 128 + "a", "\ud800", "\x1f"]
BAD_CHAINS: list[Any] = ["", "a..b", "a.", ".a", [], ["a", ""], ("x",) * 257, "a.b\x01", ("a", 7), b"a.b", 42]
MALFORMED_IDS = [
    "",
    "not-a-uuid",
    "12345678-1234-1234-1234-12345678901g",
    "12345678123412341234123456789012",
    "{12345678-1234-1234-1234-123456789012}",
    "12345678-1234-1234-1234-1234567890123",
    " 12345678-1234-1234-1234-123456789012",
    "urn:uuid:12345678-1234-1234-1234-123456789012",
]

SETTINGS = settings(
    max_examples=80,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass(frozen=True)
class Ref:
    """One thread id as each side spells it: the model's and the real registry's."""

    model: str
    real: str

    def upper(self) -> Ref:
        return Ref(self.model.upper(), self.real.upper())


def same(value: str) -> Ref:
    return Ref(value, value)


@dataclass(frozen=True)
class Failed:
    """A call that raised; compared by exception class."""

    kind: type[BaseException]


ids = Bundle("ids")


def any_id() -> st.SearchStrategy[Ref]:
    """Ids seen so far (either case), unknown UUIDs, malformed strings."""
    return st.one_of(
        ids,
        ids,
        ids,
        ids.map(Ref.upper),
        st.uuids().map(lambda u: same(str(u))),
        st.sampled_from(MALFORMED_IDS).map(same),
    )


class RegistryMachine(RuleBasedStateMachine):
    make_client: ClassVar[Callable[[], Any]]

    def __init__(self) -> None:
        super().__init__()
        self.client = self.make_client()
        self.model = ModelRegistry()
        self.real: ThreadRegistry | None = None  # the instance the roots, clear and views go through
        self.instances: list[ThreadRegistry] = []
        self.current = 0  # the instance the other operations go through
        self.m2r: dict[str, str] = {}
        self.r2m: dict[str, str] = {}

    # -------------------------------------------------------------- plumbing

    def link(self, m: str | None, r: str | None) -> Ref | None:
        """Pair a model id with a real id (or both None), checking earlier pairings."""
        if m is None or r is None:
            assert m is None and r is None, f"model gave {m!r}, real gave {r!r}"
            return None
        if m in self.m2r:
            assert self.m2r[m] == r, f"model id {m} is real {self.m2r[m]}, but real now gave {r}"
        else:
            assert r not in self.r2m, (
                f"real gave {r}, already paired with model {self.r2m[r]}, model gave {m}"
            )
            self.m2r[m] = r
            self.r2m[r] = m
        return Ref(m, r)

    def both(self, method: str, *args: Any) -> tuple[Any, Any] | None:
        """Run method on both sides (Ref args spelled per side); None if both raised alike."""
        assert self.real is not None
        real = self.real if method in ("initialize_root", "clear") else self.instances[self.current]
        results: list[Any] = []
        for side, target in (("model", self.model), ("real", real)):
            spelled = [getattr(a, side) if isinstance(a, Ref) else a for a in args]
            try:
                results.append(getattr(target, method)(*spelled))
            except (ValueError, RegistryError) as exc:
                results.append(Failed(type(exc)))
        m, r = results
        if isinstance(m, Failed) or isinstance(r, Failed):
            assert m == r, f"{method}{args}: model {m!r}, real {r!r}"
            return None
        return m, r

    def id_result(self, method: str, *args: Any) -> Any:
        out = self.both(method, *args)
        if out is None:
            return multiple()
        ref = self.link(*out)
        assert ref is not None, f"{method}{args} gave no id"
        return ref

    # -------------------------------------------------------------- setup

    @initialize(ttl=st.sampled_from([None, TTL_LONG]), ttl2=st.sampled_from([None, TTL_LONG, TTL_LONG // 2]))
    def setup(self, ttl: int | None, ttl2: int | None) -> None:
        self.real = ThreadRegistry(self.client, namespace="acme", ttl=ttl)
        # A second instance on the same namespace (another process, maybe another ttl):
        # the contract is the same whichever instance a call goes through.
        self.instances = [self.real, ThreadRegistry(self.client, namespace="acme", ttl=ttl2)]
        # A neighbour namespace whose name starts like ours: nothing here may touch it.
        self.neighbour = ThreadRegistry(self.client, namespace="acme:x", ttl=None)
        self.neighbour.initialize_root("acme")
        self.neighbour.get_or_create(("a", "b"))
        self.neighbour_dump = self.neighbour.debug_dump()

    def teardown(self) -> None:
        if self.real is not None:
            assert self.neighbour.debug_dump() == self.neighbour_dump

    # -------------------------------------------------------------- strategies

    # -------------------------------------------------------------- rules: creating

    @rule(which=st.sampled_from([0, 1]))
    def switch_instance(self, which: int) -> None:
        self.current = which

    @rule(target=ids, org=st.sampled_from(ORGS))
    def initialize_root(self, org: str) -> Any:
        return self.id_result("initialize_root", org)

    @rule(target=ids, hops=st.lists(st.sampled_from(HOPS), min_size=1, max_size=4))
    def get_or_create_hops(self, hops: list[str]) -> Any:
        return self.id_result("get_or_create", tuple(hops))

    @rule(target=ids, hops=st.lists(st.sampled_from(HOPS), min_size=1, max_size=4), as_list=st.booleans())
    def get_or_create_dotted(self, hops: list[str], as_list: bool) -> Any:
        # A str is split on dots; the same hops as a list are taken verbatim.
        dotted = ".".join(hops)
        return self.id_result("get_or_create", dotted.split(".") if as_list else dotted)

    @rule(target=ids, hops=st.lists(st.sampled_from(PLAIN_HOPS), min_size=1, max_size=3))
    def get_or_create_plain(self, hops: list[str]) -> Any:
        # Without dotted hops the str and the tuple name the same chain.
        a = self.id_result("get_or_create", ".".join(hops))
        b = self.id_result("get_or_create", tuple(hops))
        assert a == b
        return a

    @rule(target=ids, initiator=st.sampled_from(HOPS), target_hop=st.sampled_from(HOPS))
    def start_chain(self, initiator: str, target_hop: str) -> Any:
        return self.id_result("start_chain", initiator, target_hop)

    @rule(target=ids, current=any_id(), hop=st.sampled_from(HOPS))
    def extend_chain(self, current: Ref, hop: str) -> Any:
        return self.id_result("extend_chain", current, hop)

    @rule(target=ids, thread=any_id(), depth=st.sampled_from([31, 32, 33]), hop=st.sampled_from(HOPS))
    def deep_chain(self, thread: Ref, depth: int, hop: str) -> Any:
        # 32 hops is the limit: a 33-hop chain is refused, and so is extending a 32-hop one.
        return self.id_result("get_or_create", ("deep",) * (depth - 1) + (hop,))

    @rule(target=ids, size=st.sampled_from([2047, 2048, 2049]), hop=st.sampled_from(HOPS))
    def long_chain(self, size: int, hop: str) -> Any:
        # 2,048 bytes is the limit (separators included): 2,049 is refused, and so is
        # extending a chain to more. Long hops, then `hop` last, `size` bytes in all.
        return self.id_result("get_or_create", (*fill_hops(size - len(hop.encode()) - 1), hop))

    @rule(target=ids, thread=any_id())
    def prune_for_response(self, thread: Ref) -> Any:
        out = self.both("prune_for_response", thread)
        assert out is not None
        (m_target, m_id), (r_target, r_id) = out
        assert m_target == r_target, f"prune target: model {m_target!r}, real {r_target!r}"
        ref = self.link(m_id, r_id)
        return multiple() if ref is None else ref

    @rule(
        target=ids,
        thread=st.one_of(ids, ids.map(Ref.upper), st.uuids().map(lambda u: same(str(u)))),
        upper_fresh=st.booleans(),
        initiator=st.sampled_from(HOPS),
        target_hop=st.sampled_from(HOPS),
    )
    def register_thread(self, thread: Ref, upper_fresh: bool, initiator: str, target_hop: str) -> Any:
        if upper_fresh and thread.model == thread.real:
            thread = thread.upper()
        return self.id_result("register_thread", thread, initiator, target_hop)

    @rule(target=ids, thread=ids, initiator=st.sampled_from(HOPS), target_hop=st.sampled_from(HOPS))
    def rebind_elsewhere(self, thread: Ref, initiator: str, target_hop: str) -> Any:
        """Free an id, bind it to another chain, then ask for its old chain again.

        The old chain must get an id other than the one now bound elsewhere.
        """
        before = self.model.lookup_hops(thread.model)
        assert self.both("cleanup", thread) == (None, None)
        out = [self.id_result("register_thread", thread, initiator, target_hop)]
        if before is not None:
            out.append(self.id_result("get_or_create", before))
        return multiple(*(ref for ref in out if isinstance(ref, Ref)))

    @rule(target=ids, table=st.sampled_from(TABLES), org=st.sampled_from(ORGS))
    def initialize_table_root(self, table: str, org: str) -> Any:
        return self.id_result("initialize_table_root", table, org)

    # -------------------------------------------------------------- rules: reading, removing

    @rule(table=st.sampled_from(TABLES))
    def get_table_root(self, table: str) -> None:
        out = self.both("get_table_root", table)
        assert out is not None
        self.link(*out)

    @rule(thread=any_id())
    def get_table_for_thread(self, thread: Ref) -> None:
        out = self.both("get_table_for_thread", thread)
        assert out is not None
        assert out[0] == out[1]

    @rule(thread=any_id())
    def lookup(self, thread: Ref) -> None:
        out = self.both("lookup", thread)
        assert out is not None and out[0] == out[1]
        out = self.both("lookup_hops", thread)
        assert out is not None and out[0] == out[1]

    @rule(thread=any_id())
    def cleanup(self, thread: Ref) -> None:
        out = self.both("cleanup", thread)
        assert out == (None, None)

    @precondition(lambda self: len(self.model.hops_by_id()) >= 4)
    @rule()
    def clear(self) -> None:
        out = self.both("clear")
        assert out == (None, None)

    @rule(
        method=st.sampled_from(
            [
                "chain",
                "get_or_create",
                "get_or_create_list",
                "start_chain",
                "extend_chain",
                "register_thread",
                "register_malformed",
                "initialize_root",
                "initialize_table_root",
                "table_organism",
                "get_table_root",
            ]
        ),
        bad=st.sampled_from(BAD_HOPS),
        chain=st.sampled_from(BAD_CHAINS),
        thread=any_id(),
        malformed=st.sampled_from(MALFORMED_IDS),
    )
    def bad_input(self, method: str, bad: str, chain: Any, thread: Ref, malformed: str) -> None:
        """Bad input raises the same error class on both sides and writes nothing."""
        calls: dict[str, tuple[Any, ...]] = {
            "chain": ("get_or_create", chain),
            "get_or_create": ("get_or_create", f"a.{bad}"),
            "get_or_create_list": ("get_or_create", ["a", bad, "b"]),
            "start_chain": ("start_chain", "a", bad),
            "extend_chain": ("extend_chain", thread, bad),
            "register_thread": ("register_thread", same(str(uuid.uuid4())), bad, "a"),
            "register_malformed": ("register_thread", same(malformed), "a", "b"),
            "initialize_root": ("initialize_root", bad),
            "initialize_table_root": ("initialize_table_root", bad, "acme"),
            "table_organism": ("initialize_table_root", "orders", bad),
            "get_table_root": ("get_table_root", bad),
        }
        name, *args = calls[method]
        assert self.both(name, *args) is None

    # -------------------------------------------------------------- invariants

    @invariant()
    def same_state(self) -> None:
        if self.real is None:
            return
        model = self.model.hops_by_id()
        unpaired = [m for m in model if m not in self.m2r]
        assert not unpaired, f"model ids never paired: {unpaired}"
        expected = {self.m2r[m]: hops for m, hops in model.items()}
        actual = {row.thread_id: row.hops for row in self.real.threads()}
        assert actual == expected
        assert self.real.debug_dump() == {r: ".".join(h) for r, h in expected.items()}
        assert self.real.root_chain == self.model.root_chain
        m_root, r_root = self.model.root_uuid, self.real.root_uuid
        assert (m_root is None and r_root is None) or (m_root is not None and self.m2r.get(m_root) == r_root)


def run_machine(make_client: Callable[[], Any]) -> None:
    machine = type("Machine", (RegistryMachine,), {"make_client": staticmethod(make_client)})
    run_state_machine_as_test(machine, settings=SETTINGS)


@pytest.fixture(scope="module")
def module_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def test_model_on_redis_server(module_server: RedisServer) -> None:
    client = module_server.client()

    def fresh() -> Any:
        client.flushall()
        return client

    try:
        run_machine(fresh)
    finally:
        client.close()


@pytest.mark.parametrize("adapted", [True, False], ids=["embedded", "plain"])
def test_model_on_fakeredis(adapted: bool) -> None:
    """On the embedded server as registry.embedded adapts it, and on plain fakeredis."""
    run_machine(lambda: embedded.client_for(embedded.new_server() if adapted else fakeredis.FakeServer()))
