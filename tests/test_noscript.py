"""NOSCRIPT recovery (SPEC 5): after SCRIPT FLUSH every call reloads and retries by itself,
also while another client flushes the script cache over and over."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from registry import ThreadRegistry
from registry.aio import AsyncThreadRegistry
from tests.invariants import assert_one_chain_one_id
from tests.servers import RedisServer

MakeRegistry = Callable[..., ThreadRegistry]


def new_id() -> str:
    return str(uuid.uuid4())


def test_every_method_works_after_script_flush(reg: ThreadRegistry, client: Any) -> None:
    def flushed(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        client.script_flush()
        return method(*args, **kwargs)

    root = flushed(reg.initialize_root, "acme")
    assert reg.root_chain == "system.acme"
    a = flushed(reg.get_or_create, "system.acme.console")
    b = flushed(reg.extend_chain, a, "router")
    assert flushed(reg.lookup, b) == "system.acme.console.router"
    assert flushed(reg.lookup_hops, b) == ("system", "acme", "console", "router")
    assert flushed(reg.prune_for_response, b) == ("console", a)
    assert flushed(reg.prune_for_response, b) == ("console", a)  # (on the pool: NOSCRIPT, then the plan)
    assert flushed(reg.lookup, flushed(reg.start_chain, "cli", "router")) == "cli.router"
    tid = new_id()
    assert flushed(reg.register_thread, tid, "ext", "in") == tid
    table = flushed(reg.initialize_table_root, "orders", "acme")
    assert flushed(reg.get_table_root, "orders") == table
    worker = flushed(reg.extend_chain, table, "worker")
    assert flushed(reg.get_table_for_thread, worker) == "orders"
    dump = flushed(reg.debug_dump)
    assert dump[root] == "system.acme" and dump[tid] == "system.acme.ext.in"
    assert {row.thread_id for row in flushed(reg.threads)} == set(dump)
    assert flushed(reg.gc) == 0
    assert flushed(reg.cleanup, worker) is None
    assert flushed(reg.lookup, worker) is None
    assert_one_chain_one_id(reg)
    flushed(reg.clear)
    assert flushed(reg.debug_dump) == {}


def test_batch_works_after_script_flush(reg: ThreadRegistry, client: Any) -> None:
    root = reg.initialize_root("acme")
    client.script_flush()
    batch = reg.batch()
    batch.extend_chain(root, "a")
    batch.get_or_create("x.y")
    batch.lookup(root)
    batch.debug_dump()
    a, xy, chain, dump = batch.execute()
    assert reg.lookup(a) == "system.acme.a"
    assert reg.lookup(xy) == "x.y"
    assert chain == "system.acme"
    assert dump == {root: "system.acme", a: "system.acme.a", xy: "x.y"}


def test_two_registries_on_one_server_after_flush(make_registry: MakeRegistry, client: Any) -> None:
    one = make_registry(namespace="acme")
    two = make_registry(namespace="acme")
    tid = one.get_or_create("a.b")
    client.script_flush()
    assert two.lookup(tid) == "a.b"
    client.script_flush()
    assert one.get_or_create("a.b") == tid


# ---------------------------------------------------------------- another process, flushes here


def _worker(url: str, seconds: float, ready: Any, results: Any) -> None:
    """Runs operations for `seconds` and reports (operations, failures)."""
    done, failures = 0, []
    try:
        reg = ThreadRegistry.from_url(url, namespace="flushed", ttl=600)
        loop = asyncio.new_event_loop()
        areg = AsyncThreadRegistry.from_url(url, namespace="flushed", ttl=600)
        root = reg.initialize_root("acme")
        ready.set()
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            i += 1
            step = i % 6
            try:
                if step == 0:
                    tid = reg.extend_chain(root, f"hop{i % 20}")
                    if reg.lookup(tid) != f"system.acme.hop{i % 20}":
                        failures.append(f"lookup of {tid} disagrees")
                elif step == 1:
                    reg.get_or_create(f"a.b{i % 30}")
                elif step == 2:
                    reg.prune_for_response(reg.start_chain("cli", f"t{i % 10}"))
                elif step == 3:
                    batch = reg.batch()
                    batch.get_or_create(f"batch.b{i % 10}")
                    batch.lookup(root)
                    results_of_batch = batch.execute()
                    if results_of_batch[1] != "system.acme":
                        failures.append("batch lookup of the root disagrees")
                elif step == 4:
                    tid = loop.run_until_complete(areg.extend_chain(root, "async"))
                    if loop.run_until_complete(areg.lookup(tid)) != "system.acme.async":
                        failures.append("async lookup disagrees")
                else:
                    reg.register_thread(new_id(), "ext", f"in{i % 5}")
                done += 1
            except Exception as exc:  # every failure counts, whatever its kind
                failures.append(f"step {step}: {type(exc).__name__}: {exc}")
        loop.run_until_complete(areg.aclose())
        loop.close()
    except Exception:
        failures.append(traceback.format_exc())
    finally:
        ready.set()
        results.put((done, failures))


@pytest.mark.parametrize("backend", ["redis"])  # a fakeredis server cannot be shared across processes
def test_no_call_fails_while_another_client_flushes_scripts(client: Any, redis_server: RedisServer) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    results = ctx.Queue()
    child = ctx.Process(target=_worker, args=(redis_server.url, 2.0, ready, results), daemon=True)
    child.start()
    try:
        assert ready.wait(60), "the worker process did not start"
        flushes = 0
        while child.is_alive() and results.empty():
            client.script_flush()
            flushes += 1
        done, failures = results.get(timeout=30)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    assert flushes > 100
    assert done > 50
    by_kind = Counter(f.split(":", 2)[0] + ":" + f.split(":", 2)[1] if ":" in f else f for f in failures)
    assert failures == [], f"{len(failures)} of {done + len(failures)} calls failed: {dict(by_kind)}"
    assert_one_chain_one_id(ThreadRegistry(client, namespace="flushed"))
