"""The subcommands of `thread-registry`: each an (add_arguments, run) pair.

`run(args, target)` returns the exit status: 0 done, 1 a negative answer (nothing
found, problems found), 2 usage or connection errors (raised, reported by cli.main).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from .cli_connect import Target, UsageError, add_connection_arguments
from .cli_progress import Steps, time_left
from .operations import Program, ThreadInfo

DEFAULT_LIMIT = 1000


def say(line: str) -> None:
    print(line, flush=False)


def warn(line: str) -> None:
    print(line, file=sys.stderr)


def holds_nothing(reg: Any) -> bool:
    """Whether the namespace has no key at all (never used, cleared, or expired)."""
    return int(reg.client.exists(*reg._ops.keys)) == 0


def nothing_here(namespace: str) -> str:
    return f"namespace {namespace!r} holds nothing (never used, cleared, or expired)"


def server_now_ms(reg: Any) -> int:
    """The server's clock (deadlines are the server's), in ms."""
    seconds, micros = reg.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def drive(reg: Any, program: Program[Any], steps: Steps, status: Callable[[Any], str]) -> Any:
    """Runs a multi-step operation one call at a time, so Ctrl-C stops it between calls."""
    try:
        call = next(program)
        while True:
            reply = reg._run(call)
            steps.step(status(reply))
            call = program.send(reply)
    except StopIteration as done:
        return done.value
    finally:
        program.close()


# ---------------------------------------------------------------- demo


def add_demo(cmd: argparse.ArgumentParser) -> None:
    add_connection_arguments(cmd, namespace_required=False)
    cmd.add_argument("--async", dest="use_async", action="store_true", help="use AsyncThreadRegistry")


def run_demo(args: argparse.Namespace, target: Target | None) -> int:
    from .demo import run_demo as play

    return play(None, args.use_async, args.namespace, target=target)


# ---------------------------------------------------------------- threads


def add_threads(cmd: argparse.ArgumentParser) -> None:
    add_connection_arguments(cmd)
    cmd.add_argument("--json", action="store_true", help="one JSON object per thread, nothing else")
    cmd.add_argument("--under", metavar="CHAIN_PREFIX", help="only this chain and those below it (dotted)")
    cmd.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"stop after this many threads (default {DEFAULT_LIMIT}; 0: all)",
    )


def _under(prefix: str | None) -> Callable[[ThreadInfo], bool]:
    if not prefix:
        return lambda row: True
    return lambda row: row.chain == prefix or row.chain.startswith(prefix + ".")


def run_threads(args: argparse.Namespace, target: Target | None) -> int:
    from .demo import render_tree

    if args.limit < 0:
        raise UsageError(f"--limit {args.limit} must be >= 0 (0: all)")
    assert target is not None
    with target.sync_registry(args.namespace) as reg:
        if holds_nothing(reg):
            warn(nothing_here(args.namespace))
            return 1
        now = server_now_ms(reg)
        wanted = _under(args.under)
        rows: list[ThreadInfo] = []
        full = False
        steps = Steps("reading threads", quiet=args.json)
        with steps.interruptible():
            for kind in ("t", "p"):
                cursor = "0"
                while not full:
                    cursor, page = reg._run(reg._ops.dump_page(kind, cursor))
                    for row in filter(wanted, page):
                        if args.limit and len(rows) >= args.limit:
                            full = True
                            break
                        rows.append(row)
                        if args.json:
                            say(json.dumps(_row_json(row, now)))
                    steps.step(f"{len(rows)} threads")
                    if cursor == "0":
                        break
        if args.json:
            return 0
        which = f" under {args.under!r}" if args.under else ""
        more = f" (stopped at --limit {args.limit}; more exist)" if full else ""
        say(f"{len(rows)} live threads{which} in namespace {args.namespace!r}{more}")
        for line in render_tree(rows, deadlines_from=now):
            say(line)
    return 0


def _row_json(row: ThreadInfo, now: int) -> dict[str, Any]:
    return {
        "id": row.thread_id,
        "hops": list(row.hops),
        "deadline_ms": row.deadline_ms,
        "expires": time_left(row.deadline_ms, now),
    }


# ---------------------------------------------------------------- lookup, cleanup


def add_thread_id(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("thread_id", metavar="ID", help="a thread id (UUID)")
    add_connection_arguments(cmd)
    cmd.add_argument("--json", action="store_true", help="print one JSON object")


def _known(reg: Any, thread_id: str) -> tuple[str, ...] | None:
    from .validation import normalize_id

    if normalize_id(thread_id) is None:
        raise UsageError(f"thread id {thread_id!r} is not a UUID")
    hops: tuple[str, ...] | None = reg.lookup_hops(thread_id)
    return hops


def run_lookup(args: argparse.Namespace, target: Target | None) -> int:
    assert target is not None
    with target.sync_registry(args.namespace) as reg:
        hops = _known(reg, args.thread_id)
        if hops is None:
            empty = holds_nothing(reg)
            if args.json:
                say(json.dumps({"id": args.thread_id, "hops": None, "chain": None}))
            warn(
                nothing_here(args.namespace)
                if empty
                else f"thread {args.thread_id} is not known in "
                f"namespace {args.namespace!r} (never made, cleaned up, or expired)"
            )
            return 1
        if args.json:
            say(json.dumps({"id": args.thread_id, "hops": list(hops), "chain": ".".join(hops)}))
        else:
            say(".".join(hops))
    return 0


def run_cleanup(args: argparse.Namespace, target: Target | None) -> int:
    assert target is not None
    with target.sync_registry(args.namespace) as reg:
        hops = _known(reg, args.thread_id)
        if hops is None:
            empty = holds_nothing(reg)
            warn(
                nothing_here(args.namespace)
                if empty
                else f"thread {args.thread_id} is not known in "
                f"namespace {args.namespace!r}; nothing to clean up"
            )
            if args.json:
                say(json.dumps({"id": args.thread_id, "removed": False}))
            return 1
        reg.cleanup(args.thread_id)
        if args.json:
            say(json.dumps({"id": args.thread_id, "removed": True, "chain": ".".join(hops)}))
        else:
            say(f"cleaned up thread {args.thread_id} ({'.'.join(hops)})")
    return 0


# ---------------------------------------------------------------- gc, clear


def add_gc(cmd: argparse.ArgumentParser) -> None:
    add_connection_arguments(cmd)
    cmd.add_argument("--limit", type=int, default=100_000, help="stop after this many (default 100000)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")


def run_gc(args: argparse.Namespace, target: Target | None) -> int:
    assert target is not None
    with target.sync_registry(args.namespace) as reg:
        program = reg._ops.gc(args.limit)  # checks the limit before anything is sent
        if holds_nothing(reg):
            program.close()
            warn(nothing_here(args.namespace))
            reclaimed = 0
        else:
            done = [0]

            def status(reply: Any) -> str:
                done[0] += int(reply[0])
                return f"{done[0]} reclaimed"

            steps = Steps("gc", quiet=args.json)
            with steps.interruptible():
                reclaimed = drive(reg, program, steps, status)
    if args.json:
        say(json.dumps({"namespace": args.namespace, "reclaimed": reclaimed}))
    else:
        say(f"reclaimed {reclaimed} expired mappings in namespace {args.namespace!r}")
    return 0


def add_clear(cmd: argparse.ArgumentParser) -> None:
    add_connection_arguments(cmd)
    cmd.add_argument("--yes", action="store_true", help="really remove every thread of the namespace")


def run_clear(args: argparse.Namespace, target: Target | None) -> int:
    assert target is not None
    with target.sync_registry(args.namespace) as reg:
        if holds_nothing(reg):
            warn(nothing_here(args.namespace) + "; nothing to clear")
            return 0
        if not args.yes:
            raise UsageError(
                f"clear removes every thread of namespace {args.namespace!r} and renews its salt "
                "(ids change); run it again with --yes"
            )
        reg.clear()  # one UNLINK: the server frees the hashes in the background
        say(f"cleared namespace {args.namespace!r}")
    return 0


# ---------------------------------------------------------------- stats


def add_stats(cmd: argparse.ArgumentParser) -> None:
    add_connection_arguments(cmd)
    cmd.add_argument("--json", action="store_true", help="one JSON object (the fields of Stats)")


def run_stats(args: argparse.Namespace, target: Target | None) -> int:
    assert target is not None
    with target.sync_registry(args.namespace) as reg:
        result = reg.stats()
        now = server_now_ms(reg)
    empty = 1 if result.warnings and "holds nothing" in result.warnings[0] else 0
    if args.json:
        say(json.dumps(result.as_dict()))
        return empty
    for line in stats_summary(args.namespace, result, now):
        say(line)
    return empty


def _bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def stats_summary(namespace: str, s: Any, now: int) -> list[str]:
    srv = s.server
    persistence = (
        "unknown"
        if srv.aof is None and srv.rdb is None
        else ", ".join(name for name, on in (("AOF", srv.aof), ("RDB", srv.rdb)) if on) or "none"
    )
    lines = [
        f"namespace {namespace!r}",
        f"  threads     {s.threads_live:,} live, {s.threads_permanent:,} permanent, "
        f"{s.overrides:,} overrides, {s.expired_pending:,} expired awaiting reclaim",
        f"  memory      {_bytes(s.memory_bytes)}",
    ]
    if s.earliest_deadline_ms is not None:
        lines.append(
            f"  deadlines   earliest {time_left(s.earliest_deadline_ms, now)}, "
            f"latest {time_left(s.latest_deadline_ms, now)}"
        )
    if srv.version is not None:
        lines.append(
            f"  server      {srv.server} {srv.version}, {srv.role}, {srv.connected_replicas} replica(s), "
            f"maxmemory-policy {srv.maxmemory_policy}, persistence {persistence}"
        )
    lines += [f"  warning     {w}" for w in s.warnings] or ["  warnings    none"]
    return lines


# ---------------------------------------------------------------- check


def add_check(cmd: argparse.ArgumentParser) -> None:
    add_connection_arguments(cmd)
    cmd.add_argument("--repair", action="store_true", help="mend what can be mended without guessing")
    cmd.add_argument("--json", action="store_true", help="one JSON object")


def run_check(args: argparse.Namespace, target: Target | None) -> int:
    from .check import run_check as steps_of_check

    assert target is not None
    with target.sync_registry(args.namespace) as reg:
        seen = [0]

        def status(reply: Any) -> str:
            if isinstance(reply, list) and len(reply) > 2 and str(reply[2]).isdigit():
                seen[0] += int(reply[2])
            return f"{seen[0]} entries examined"

        steps = Steps("check", quiet=args.json)
        with steps.interruptible():
            result = drive(reg, steps_of_check(reg._ops, args.repair), steps, status)
    if args.json:
        say(json.dumps(result.as_dict()))
    else:
        for problem in result.problems:
            say(problem.line())
        for notice in result.notices:
            say(f"notice {notice.line()}")
    if result.empty:
        warn(nothing_here(args.namespace))
        return 1
    left = result.unrepaired if args.repair else result.problems
    if not args.json:
        found = len(result.problems)
        if not found:
            warn(f"namespace {args.namespace!r} is sound ({result.entries} entries examined)")
        elif args.repair:
            warn(f"{found} problem(s) found, {found - len(left)} repaired, {len(left)} left")
        else:
            warn(f"{found} problem(s) found; `check --repair` mends what can be mended")
    return 1 if left else 0


# ---------------------------------------------------------------- pipeline (registry/pipeline)


def add_pipeline(cmd: argparse.ArgumentParser) -> None:
    from .pipeline import add_arguments

    add_arguments(cmd)


def run_pipeline(args: argparse.Namespace, target: Target | None) -> int:
    from .pipeline import run

    return run(args)
