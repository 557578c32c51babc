"""`registry demo`: a short conversation, with the live chains drawn as a tree each step.

Runs on the embedded in-process backend unless given a URL; `--async` plays the same
conversation through AsyncThreadRegistry.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .aio import AsyncThreadRegistry
from .client import ThreadRegistry
from .embedded import embedded_async_client, embedded_client
from .operations import ThreadInfo


def render_tree(
    rows: Sequence[ThreadInfo], root_id: str | None = None, deadlines_from: int | None = None
) -> list[str]:
    """Live chains as a tree of hops; hops that are threads show their short id (and,
    given the server's time in ms as `deadlines_from`, when they expire)."""
    from .cli_progress import time_left

    tree: dict[str, Any] = {}
    ids: dict[tuple[str, ...], str] = {}
    whens: dict[tuple[str, ...], str] = {}
    for row in rows:
        node = tree
        for hop in row.hops:
            node = node.setdefault(hop, {})
        ids[row.hops] = row.thread_id
        if deadlines_from is not None:
            whens[row.hops] = ", " + time_left(row.deadline_ms, deadlines_from)
    lines: list[str] = []

    def walk(node: dict[str, Any], path: tuple[str, ...], prefix: str) -> None:
        names = sorted(node)
        for i, name in enumerate(names):
            last = i == len(names) - 1
            here = (*path, name)
            tid = ids.get(here)
            label = name
            if tid is not None:
                label = f"{name}  [{'root ' if tid == root_id else ''}{tid[:8]}{whens.get(here, '')}]"
            lines.append(f"{prefix}{'└── ' if last else '├── '}{label}")
            walk(node[name], here, prefix + ("    " if last else "│   "))

    walk(tree, (), "  ")
    return lines or ["  (no live threads)"]


class _Awaited:
    """Makes a sync registry's methods awaitable, so one conversation serves both classes."""

    def __init__(self, registry: ThreadRegistry) -> None:
        self._registry = registry

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._registry, name)

        async def call(*args: Any) -> Any:
            return method(*args)

        return call


async def conversation(reg: Any, say: Callable[[str], None] = print) -> dict[str, str]:
    """Forward a message through a few hops, then answer back hop by hop."""

    async def show(title: str) -> None:
        say(f"\n{title}")
        for line in render_tree(await reg.threads(), root):
            say(line)

    root = await reg.initialize_root("acme")
    await show(f"boot: root system.acme is {root[:8]} (every process asking gets this id)")

    inbound = str(uuid.uuid4())
    console = await reg.register_thread(inbound, "console", "router")
    await show(f"a user message arrives with thread id {inbound[:8]}: bound to console -> router")

    router = console
    add = await reg.extend_chain(router, "calculator.add")
    await show(f"router forwards to the dotted hop 'calculator.add': thread {add[:8]}")

    greet = await reg.extend_chain(router, "greeter")
    await show(f"router also forwards to greeter: thread {greet[:8]}")

    threads = {"root": root, "router": router, "calculator.add": add, "greeter": greet}
    for name, tid in (("calculator.add", add), ("greeter", greet), ("router", router)):
        target, back = await reg.prune_for_response(tid)
        await reg.cleanup(tid)  # the bus is done with the answered thread
        await show(
            f"{name} answers: the answer goes to {target!r} on thread {str(back)[:8]}; {tid[:8]} cleaned up"
        )
    say("\nthreads nobody cleans up expire after the ttl (a day by default); roots never expire.")
    return threads


def run_demo(
    url: str | None = None, use_async: bool = False, namespace: str | None = None, target: Any = None
) -> int:
    """Play the conversation on `url`, or on `target` (a cli_connect.Target: URL, cluster
    or Sentinel), or on the embedded backend; clears its namespace after."""
    namespace = namespace or f"demo-{uuid.uuid4().hex[:6]}"
    if url and target is None:
        from .cli_connect import Target

        target = Target(url=url)
    where = target.where() if target is not None else "the embedded in-process backend (fakeredis with Lua)"
    print(f"thread registry demo on {where}, namespace {namespace!r}, {'async' if use_async else 'sync'} API")
    if use_async:

        async def main() -> None:
            if target is not None:
                areg = target.async_registry(namespace)
            else:
                areg = AsyncThreadRegistry(embedded_async_client(), namespace=namespace)
            async with areg:
                await conversation(areg)
                await areg.clear()

        asyncio.run(main())
    else:
        opened = target.sync_registry(namespace) if target is not None else None
        with opened or ThreadRegistry(embedded_client(), namespace=namespace) as reg:
            asyncio.run(conversation(_Awaited(reg)))
            reg.clear()
    return 0
