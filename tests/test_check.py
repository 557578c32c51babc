"""check() and check(repair=True): namespaces damaged by writing raw keys, one kind of
damage at a time; check names it, repair mends it, the healthy mappings are untouched.
Also a repair racing several processes of live traffic, and the CLI's exit statuses."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from registry import CheckResult, ThreadRegistry
from tests.invariants import assert_one_chain_one_id, assert_raw_keys_consistent
from tests.servers import RedisServer

NS = "chk"
META, THREADS, OVERRIDES = (f"threadreg:{{{NS}}}:{k}" for k in ("meta", "threads", "overrides"))
HOUR_MS = 3600_000


def now_ms(client: Any) -> int:
    s, us = client.time()
    return int(s) * 1000 + int(us) // 1000


def dl(ms: int) -> bytes:
    return ms.to_bytes(6, "big")


def healthy(client: Any) -> tuple[ThreadRegistry, dict[str, str]]:
    """A namespace with every kind of entry: roots, table root, ttl=None threads,
    registered (overridden) threads of both kinds, floors, plain threads."""
    reg = ThreadRegistry(client, namespace=NS, ttl=3600)
    root = reg.initialize_root("acme")
    reg.initialize_table_root("orders", "acme")
    console = reg.extend_chain(root, "console")
    reg.extend_chain(console, "calculator.add")
    reg.get_or_create("deep.chain.with.floors")  # its prefixes get floors, no mappings
    reg.register_thread(str(uuid.uuid4()), "mail", "inbox")
    ThreadRegistry(client, namespace=NS, ttl=None).register_thread(str(uuid.uuid4()), "cron", "nightly")
    for i in range(30):
        reg.start_chain("client", f"w{i}")
    result = reg.check()
    assert result.sound, [p.line() for p in result.problems]
    return reg, reg.debug_dump()


def a_thread(reg: ThreadRegistry, hops: tuple[str, ...]) -> str:
    return reg.get_or_create(list(hops))


def overridden(client: Any) -> tuple[str, bytes, bytes]:
    """An expiring registered thread: (its id, its derived id, its raw value). (Only an
    override whose thread is there: a damage written before may have added one.)"""
    for d, tid in client.hgetall(OVERRIDES).items():
        if d and (value := client.hget(THREADS, tid)) is not None:
            return tid.decode(), d, value
    raise AssertionError("no override")


# Each damage: (name, function writing it, kinds check must report, whether the damaged
# thing is itself a healthy mapping that repair may remove (then it is left out of the
# untouched comparison)).
Damage = Callable[[Any, ThreadRegistry], set[str]]


def bad_field(client: Any, reg: ThreadRegistry) -> set[str]:
    client.hset(THREADS, "not-an-id", dl(now_ms(client) + HOUR_MS) + b"a")
    return set()


def short_value(client: Any, reg: ThreadRegistry) -> set[str]:
    client.hset(THREADS, str(uuid.uuid4()), b"\x00\x01")
    return set()


def control_char_in_chain(client: Any, reg: ThreadRegistry) -> set[str]:
    client.hset(THREADS, str(uuid.uuid4()), dl(now_ms(client) + HOUR_MS) + b"a\x1fb\x01c")
    return set()


def bad_floor(client: Any, reg: ThreadRegistry) -> set[str]:
    client.hset(THREADS, b"\0short", b"abc")
    return set()


def bad_placeholder(client: Any, reg: ThreadRegistry) -> set[str]:
    client.hset(THREADS, "", "something")
    return set()


def wrong_chain(client: Any, reg: ThreadRegistry) -> set[str]:
    victim = a_thread(reg, ("client", "w3"))  # a derived id, now claiming another chain
    value = client.hget(THREADS, victim)
    client.hset(THREADS, victim, value[:6] + b"some\x1fother")
    return {victim}


def second_id_for_a_chain(client: Any, reg: ThreadRegistry) -> set[str]:
    d = a_thread(reg, ("client", "w4"))
    intruder = str(uuid.uuid4())
    value = client.hget(THREADS, d)
    client.hset(THREADS, intruder, value[:6] + b"\0" + d.encode() + value[6:])  # no override leads to it
    return set()


def lost_override(client: Any, reg: ThreadRegistry) -> set[str]:
    _, d, _ = overridden(client)
    client.hdel(OVERRIDES, d)
    return set()


def dangling_override(client: Any, reg: ThreadRegistry) -> set[str]:
    client.hset(OVERRIDES, str(uuid.uuid4()), str(uuid.uuid4()))
    return set()


def dangling_meta_override(client: Any, reg: ThreadRegistry) -> set[str]:
    client.hset(META, f"Q{uuid.uuid4()}", str(uuid.uuid4()))
    return set()


def broken_root_pointer(client: Any, reg: ThreadRegistry) -> set[str]:
    client.hset(META, "root", str(uuid.uuid4()) + "system\x1facme")
    return set()


def broken_table_pointer(client: Any, reg: ThreadRegistry) -> set[str]:
    client.hset(META, "Tinvoices", str(uuid.uuid4()))
    return set()


def malformed_permanent(client: Any, reg: ThreadRegistry) -> set[str]:
    client.hset(META, f"P{uuid.uuid4()}", b"bad\x02hop")
    return set()


def early_floor(client: Any, reg: ThreadRegistry) -> set[str]:
    floors = [f for f in client.hkeys(THREADS) if f.startswith(b"\0")]
    assert floors
    soon = dl(now_ms(client) + 60_000)  # a minute: before the leaf's hour
    for f in floors:
        client.hset(THREADS, f, soon)
    return set()


def short_key_expiry(client: Any, reg: ThreadRegistry) -> set[str]:
    client.pexpire(THREADS, 120_000)
    client.pexpire(OVERRIDES, 60_000)
    return set()


def expiring_meta(client: Any, reg: ThreadRegistry) -> set[str]:
    client.pexpire(META, 600_000)
    return set()


def missing_overrides_key(client: Any, reg: ThreadRegistry) -> set[str]:
    client.delete(OVERRIDES)  # placeholder gone, and the registered thread unreachable
    return set()


DAMAGES: list[tuple[Damage, set[str]]] = [
    (bad_field, {"malformed"}),
    (short_value, {"malformed"}),
    (control_char_in_chain, {"malformed"}),
    (bad_floor, {"malformed"}),
    (bad_placeholder, {"malformed"}),
    (wrong_chain, {"derived"}),
    (second_id_for_a_chain, {"duplicate"}),
    (lost_override, {"unreachable"}),
    (dangling_override, {"dangling"}),
    (dangling_meta_override, {"dangling"}),
    (broken_root_pointer, {"pointer"}),
    (broken_table_pointer, {"pointer"}),
    (malformed_permanent, {"malformed"}),
    (early_floor, {"ancestor"}),
    (short_key_expiry, {"expiry"}),
    (expiring_meta, {"expiry"}),
    (missing_overrides_key, {"expiry", "unreachable"}),
]


@pytest.mark.parametrize("backend", ["redis", "fake"], indirect=True)
@pytest.mark.parametrize(("damage", "kinds"), DAMAGES, ids=[d.__name__ for d, _ in DAMAGES])
def test_check_names_each_damage_and_repair_mends_it(
    client: Any, backend: str, damage: Damage, kinds: set[str]
) -> None:
    reg, before = healthy(client)
    removed = damage(client, reg)
    found = reg.check()
    findings = [*found.problems, *found.notices]
    assert {p.kind for p in findings} == kinds, [p.line() for p in findings]
    assert found.sound == (kinds <= {"ancestor"})  # an early floor is a notice (cleanup allows one)
    assert all(p.repaired is None for p in findings)
    repaired = reg.check(repair=True)
    assert {p.kind for p in [*repaired.problems, *repaired.notices]} == kinds
    assert all(p.repaired for p in [*repaired.problems, *repaired.notices])
    after = reg.check()
    assert after.sound and not after.notices, [p.line() for p in [*after.problems, *after.notices]]
    assert_raw_keys_consistent(reg)
    dump = assert_one_chain_one_id(reg)
    for tid, chain in before.items():
        if tid not in removed:
            assert dump.get(tid) == chain, f"healthy {tid} ({chain}) changed: {dump.get(tid)!r}"
    for tid in removed:
        assert tid not in dump


@pytest.mark.parametrize("backend", ["redis", "fake"], indirect=True)
def test_each_problem_names_the_entry(client: Any) -> None:
    reg, _ = healthy(client)
    victim = a_thread(reg, ("client", "w3"))
    wrong_chain(client, reg)
    [problem] = reg.check().problems
    assert (problem.kind, problem.key, problem.field) == ("derived", "threads", victim)
    assert "some.other" in problem.detail
    bad_field(client, reg)
    lines = [p.line() for p in reg.check().problems]
    assert any(line.startswith("malformed: threads 'not-an-id'") for line in lines), lines


@pytest.mark.parametrize("backend", ["redis", "fake"], indirect=True)
def test_a_changed_salt_is_named_for_every_thread_and_nothing_is_invented(client: Any) -> None:
    reg, before = healthy(client)
    client.hset(META, "salt", "a-new-salt")
    found = reg.check()
    derived = {p.field for p in found.problems if p.kind == "derived"}
    assert len(derived) >= 30  # every expiring and permanent mapping whose id was derived
    reg.check(repair=True)
    assert reg.check().sound
    dump = reg.debug_dump()
    assert set(dump) <= set(before)  # only removals: no mapping invented
    assert_one_chain_one_id(reg)


def test_an_unknown_field_and_another_layout_are_reported_not_touched(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.flushall()
    reg, _ = healthy(client)
    client.hset(META, "zzz", "1")
    result = reg.check(repair=True)
    assert [(p.kind, p.field, p.repaired) for p in result.problems] == [("unknown", "zzz", None)]
    assert client.hget(META, "zzz") == b"1"
    client.hdel(META, "zzz")
    client.hset(META, "v", "9")
    result = reg.check(repair=True)
    assert [(p.kind, p.repaired) for p in result.problems] == [("layout", None)]
    assert "layout 9" in result.problems[0].detail


def test_async_check(redis_server: RedisServer) -> None:
    import asyncio

    import redis.asyncio

    from registry.aio import AsyncThreadRegistry

    client = redis_server.client()
    client.flushall()
    reg, _ = healthy(client)
    lost_override(client, reg)

    async def run() -> tuple[CheckResult, CheckResult, CheckResult]:
        async with AsyncThreadRegistry(redis.asyncio.Redis.from_url(redis_server.url), namespace=NS) as a:
            return await a.check(), await a.check(repair=True), await a.check()

    found, repaired, after = asyncio.run(run())
    assert [p.kind for p in found.problems] == ["unreachable"]
    assert repaired.problems[0].repaired and after.sound


def test_small_pages_find_the_same(redis_server: RedisServer) -> None:
    from registry.check import run_check

    client = redis_server.client()
    client.flushall()
    reg, _ = healthy(client)
    dangling_override(client, reg)
    second_id_for_a_chain(client, reg)
    whole = reg.check()
    paged = reg._drive(run_check(reg._ops, page=3))
    assert sorted(p.line() for p in whole.problems) == sorted(p.line() for p in paged.problems)
    assert paged.entries == whole.entries


# ---------------------------------------------------------------- under load


def _traffic(url: str, seconds: float, seed: int) -> None:
    import random

    rng = random.Random(seed)
    ttl = (0.5, 3600, None)[seed % 3]  # threads expiring under the checks, lasting, permanent
    reg = ThreadRegistry.from_url(url, namespace=NS, ttl=ttl)
    deadline = time.monotonic() + seconds
    known: list[str] = []
    while time.monotonic() < deadline:
        op = rng.random()
        hops = ["load", f"h{rng.randrange(20)}", f"k{rng.randrange(5)}"][: rng.randrange(1, 4)]
        if op < 0.4:
            known.append(reg.get_or_create(hops))
        elif op < 0.6 and known:
            known.append(reg.extend_chain(rng.choice(known), f"x{rng.randrange(5)}"))
        elif op < 0.75:
            reg.register_thread(str(uuid.uuid4()), "load-reg", f"r{rng.randrange(30)}")
        elif op < 0.85 and known:
            reg.cleanup(known.pop(rng.randrange(len(known))))
        elif known:
            reg.prune_for_response(rng.choice(known))
    reg.close()


def test_a_repair_racing_live_traffic_leaves_the_invariants_true(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.flushall()
    reg, before = healthy(client)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_traffic, args=(redis_server.url, 6.0, i)) for i in range(3)]
    for w in workers:
        w.start()
    time.sleep(1.0)  # traffic under way
    for damage in (
        bad_field,
        dangling_override,
        lost_override,
        early_floor,
        broken_table_pointer,
        short_key_expiry,
    ):
        damage(client, reg)
    rounds = 0
    while any(w.is_alive() for w in workers) or rounds < 2:
        result = reg.check(repair=True)
        assert not result.unrepaired, [p.line() for p in result.unrepaired]
        rounds += 1
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    final = reg.check()
    assert final.sound, [p.line() for p in final.problems]
    assert_raw_keys_consistent(reg)
    dump = assert_one_chain_one_id(reg)
    for tid, chain in before.items():  # the healthy mappings: the traffic's chains are others
        assert dump.get(tid) == chain


# ---------------------------------------------------------------- the command line


def test_cli_check_exit_statuses(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.flushall()
    reg, _ = healthy(client)
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREAD_REGISTRY_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "registry", "check", "--url", redis_server.url, *args],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )

    sound = cli("--namespace", NS)
    assert sound.returncode == 0 and sound.stdout == "" and "is sound" in sound.stderr
    dangling_override(client, reg)
    bad_field(client, reg)
    found = cli("--namespace", NS)
    assert found.returncode == 1
    lines = found.stdout.splitlines()
    assert len(lines) == 2 and {line.split(":")[0] for line in lines} == {"dangling", "malformed"}
    repaired = cli("--namespace", NS, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "2 repaired, 0 left" in repaired.stderr
    assert cli("--namespace", NS).returncode == 0
    client.hset(META, "zzz", "1")
    assert cli("--namespace", NS, "--repair").returncode == 1  # unknown: reported, not repaired
    assert cli("--namespace", "nothing-here").returncode == 1
    bad = cli("--namespace", "bad ns")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_check_and_repair_on_a_cluster(cluster_client: Any) -> None:
    reg, before = healthy(cluster_client)
    dangling_override(cluster_client, reg)
    lost_override(cluster_client, reg)
    assert {p.kind for p in reg.check().problems} == {"dangling", "unreachable"}
    assert not reg.check(repair=True).unrepaired
    assert reg.check().sound
    assert reg.debug_dump() == before


def test_live_traffic_alone_is_never_reported(redis_server: RedisServer) -> None:
    """Under traffic from several processes (with cleanups, prunes, registrations and
    short ttls), every check of an undamaged namespace is sound: no false alarm."""
    client = redis_server.client()
    client.flushall()
    reg, _ = healthy(client)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_traffic, args=(redis_server.url, 5.0, 10 + i)) for i in range(3)]
    for w in workers:
        w.start()
    checks = 0
    while any(w.is_alive() for w in workers) or checks < 2:
        result = reg.check()
        assert result.sound, [p.line() for p in result.problems]
        assert {p.kind for p in result.notices} <= {"ancestor"}  # after cleanups, by design
        checks += 1
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    assert checks >= 2
