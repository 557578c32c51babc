"""Concurrency: many processes on ONE real redis-server, racing on the same chains.

SPEC §4.1: at any moment every process that asks for the same hop sequence gets the same
id, and lookup of that id gives the chain back. Workers (tests/race_workers.py, started
with 'spawn') record every (chain -> id) they observe; afterwards every chain must have
had exactly one id across all processes, that id must still be the chain's, and the raw
keys must hold nothing orphaned or doubled.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from registry import ThreadRegistry
from tests import race_workers as rw
from tests.invariants import assert_raw_keys_consistent
from tests.servers import RedisServer

TTL_LONG = 10_000_000  # seconds: nothing expires during the test
PROCESSES = 8
OPS = 1000  # per sync process
HAS_AIO = importlib.util.find_spec("registry.aio") is not None


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as s:
        yield s


@pytest.fixture
def fresh(server: RedisServer) -> Iterator[RedisServer]:
    client = server.client()
    client.flushall()
    client.close()
    yield server


def run_processes(target: Callable[..., None], plans: list[Any], timeout: float = 120) -> list[Any]:
    """Start one spawned process per plan, released together; return their answers in order."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(plans))
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(plan, barrier, results, i)) for i, plan in enumerate(plans)]
    for p in procs:
        p.start()
    answers: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(answers) < len(plans):
            try:
                index, answer = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                codes = [p.exitcode for p in procs]
                pytest.fail(
                    f"workers did not all answer in {timeout}s: got {sorted(answers)}, exit codes {codes}"
                )
            answers[index] = answer
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
    failed = [a for a in answers.values() if isinstance(a, str)]
    assert not failed, "worker raised:\n" + "\n".join(failed)
    return [answers[i] for i in range(len(plans))]


def verify(reg: ThreadRegistry, observations: list[rw.Observed]) -> None:
    """Everything the workers saw is one consistent chain <-> id mapping, still live."""
    seen = rw.Observed()
    for obs in observations:
        seen.merge(obs)
    assert not seen.violations, "\n".join(seen.violations[:20])

    doubled = {chain: ids for chain, ids in seen.chains.items() if len(ids) != 1}
    assert not doubled, f"chains that got more than one id: {doubled}"
    owner = {next(iter(ids)): chain for chain, ids in seen.chains.items()}
    assert len(owner) == len(seen.chains), "one id was given for two different chains"

    roots = {obs.root for obs in observations}
    assert len(roots) == 1, f"workers saw different roots: {roots}"
    assert seen.chains[rw.ROOT] == roots

    for tid, chain in owner.items():
        assert reg.get_or_create(chain) == tid, f"{chain!r}: now {reg.get_or_create(chain)}, seen as {tid}"
        assert reg.lookup_hops(tid) == chain, (
            f"{tid}: lookup_hops {reg.lookup_hops(tid)!r}, seen as {chain!r}"
        )
        assert reg.lookup(tid) == ".".join(chain)

    rows = reg.threads()
    hops_by_id = {row.thread_id: row.hops for row in rows}
    assert len(hops_by_id) == len(rows), "an id is listed twice"
    assert len(set(hops_by_id.values())) == len(rows), "a chain has two live ids"
    dump = reg.debug_dump()
    assert dump == {tid: ".".join(h) for tid, h in hops_by_id.items()}
    assert len(set(dump.values())) == len(dump), "debug_dump: a chain rendered under two ids"
    strays = {tid: hops for tid, hops in hops_by_id.items() if owner.get(tid) != hops}
    assert not strays, f"live mappings nobody was given: {strays}"
    live = assert_raw_keys_consistent(reg)
    assert live == hops_by_id


def plans(url: str, namespace: str, ttl: float | None, n: int, ops: int, tasks: int = 1) -> list[rw.Plan]:
    ids = tuple(rw.shared_ids())
    return [rw.Plan(url, namespace, ttl, seed=1000 + i, ops=ops, ids=ids, tasks=tasks) for i in range(n)]


@pytest.mark.parametrize("ttl", [None, TTL_LONG], ids=["ttl-none", "ttl-long"])
def test_processes_agree_on_every_chain(fresh: RedisServer, ttl: float | None) -> None:
    namespace = f"race-{uuid.uuid4().hex[:6]}"
    observations = run_processes(rw.sync_worker, plans(fresh.url, namespace, ttl, PROCESSES, OPS))
    assert all(sum(obs.calls.values()) == OPS for obs in observations)
    with ThreadRegistry(fresh.client(), namespace=namespace, ttl=ttl) as reg:
        verify(reg, observations)


@pytest.mark.skipif(not HAS_AIO, reason="registry.aio is not there yet")
def test_async_tasks_in_processes_agree_on_every_chain(fresh: RedisServer) -> None:
    namespace = f"arace-{uuid.uuid4().hex[:6]}"
    n, tasks, ops = 4, 16, 60  # 960 operations per process, 16 in flight at once
    observations = run_processes(rw.async_worker, plans(fresh.url, namespace, TTL_LONG, n, ops, tasks))
    assert all(sum(obs.calls.values()) == tasks * ops for obs in observations)
    with ThreadRegistry(fresh.client(), namespace=namespace, ttl=TTL_LONG) as reg:
        verify(reg, observations)


def test_processes_booting_at_once_get_one_root(fresh: RedisServer) -> None:
    """8 processes released together call initialize_root('acme'), round after round."""
    namespaces = tuple(f"boot-{i}-{uuid.uuid4().hex[:6]}" for i in range(12))
    boot = rw.BootPlan(fresh.url, namespaces, "acme")
    answers = run_processes(rw.boot_worker, [boot] * PROCESSES)
    for r, namespace in enumerate(namespaces):
        got = {answer[r] for answer in answers}
        assert len(got) == 1, f"{namespace}: processes got different (root, table root) ids: {got}"
        ((root, table),) = got
        with ThreadRegistry(fresh.client(), namespace=namespace) as reg:
            assert reg.lookup_hops(root) == ("system", "acme")
            assert reg.get_or_create(("system", "acme")) == root
            assert reg.get_table_root("orders") == table
            assert reg.lookup_hops(table) == ("orders", "acme")
            assert len(reg.debug_dump()) == 2
            assert_raw_keys_consistent(reg)


def test_processes_booting_with_different_organisms_get_one_root(fresh: RedisServer) -> None:
    """Half the processes say 'acme', half 'globex': one organism wins, the rest conflict."""
    namespaces = tuple(f"clash-{i}-{uuid.uuid4().hex[:6]}" for i in range(12))
    organisms = ["acme", "globex"] * (PROCESSES // 2)
    answers = run_processes(rw.boot_worker, [rw.BootPlan(fresh.url, namespaces, org) for org in organisms])
    for r, namespace in enumerate(namespaces):
        with ThreadRegistry(fresh.client(), namespace=namespace) as reg:
            dump = reg.debug_dump()
            assert len(dump) == 2, dump
            for column, table in ((0, "system"), (1, "orders")):
                winners = {answer[r][column] for answer in answers} - {"conflict"}
                assert len(winners) == 1, f"{namespace}: {table} root ids {winners}"
                (winner,) = winners
                hops = reg.lookup_hops(winner)
                assert hops is not None and hops[0] == table
                for answer, org in zip(answers, organisms, strict=True):
                    # Exactly those who asked for the winning organism got it; the rest conflicted.
                    assert answer[r][column] == (winner if org == hops[1] else "conflict")
            assert_raw_keys_consistent(reg)
