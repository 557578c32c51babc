"""The embedded default backend (no Redis given): ops/s beside plain fakeredis and a
dict-under-a-lock registry.

The embedded backend is whatever ``registry.default.embedded_client()`` returns (an
in-process fakeredis with Lua, running the same scripts, adapted by registry/embedded.py),
under this library's ThreadRegistry. Beside it: the same registry on plain fakeredis (a
FakeServer of its own, not adapted: what the adaptation gains), and
`contenders.DictRegistry`, the seed's in-process design. All run in this process,
interleaved round by round like the load shapes (1 client).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from registry import ThreadRegistry

from . import analysis
from . import contenders as C
from .loads import Slice, build_fixture, op_caller, run_slice, schedule

NAMES = ("embedded", "plain", "dict")
LABELS = {
    "embedded": "this library on the embedded default (registry.default.embedded_client())",
    "plain": "this library on plain fakeredis (fakeredis.FakeRedis(), not adapted)",
    "dict": "dict under a lock (the seed's in-process design)",
}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("fakeredis", "lupa"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def run_embedded(
    tag: str, ops: Sequence[str], rounds: int, slice_s: float, max_ops: int, pool: int
) -> dict[str, Any]:
    """{"backend", "versions", "ops": {op: {contender: summary}}}."""
    import fakeredis

    from registry.embedded import embedded_client

    client = embedded_client()
    reg = ThreadRegistry(client, namespace=f"emb-{tag}", ttl=C.TTL_S)
    plain = ThreadRegistry(
        fakeredis.FakeRedis(server=fakeredis.FakeServer()), namespace=f"emb-{tag}", ttl=C.TTL_S
    )
    cs: dict[str, Any] = {"embedded": reg, "plain": plain, "dict": C.DictRegistry()}
    fixtures = {name: build_fixture(c, pool, "") for name, c in cs.items()}
    for name, c in cs.items():  # warm up: scripts compiled and loaded, code paths hot
        for op in ops:
            fn = op_caller(op, c, fixtures[name], "warm")
            for i in range(3):
                fn(i)
    cells: dict[tuple[str, str], dict[int, list[Slice]]] = defaultdict(lambda: defaultdict(list))
    for rnd, op, name in schedule(rounds, ops, NAMES):
        fn = op_caller(op, cs[name], fixtures[name], f"r{rnd}n")
        cells[(op, name)][rnd].append(run_slice(fn, slice_s, max_ops))
    reg.clear()
    table: dict[str, dict[str, Any]] = {op: {} for op in ops}
    for (op, name), per_round in cells.items():
        table[op][name] = analysis.summarize(per_round)
    return {
        "backend": f"{type(client).__module__}.{type(client).__qualname__}",
        "versions": _versions(),
        "labels": LABELS,
        "ops": table,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """python -m benchmarks.embedded [--rounds N] [--slice S] [--pool N]: the embedded table alone."""
    import argparse

    from . import report
    from .server_cost import OPS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.embedded", description=main.__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--slice", type=float, default=0.3, help="seconds per slice (default 0.3)")
    parser.add_argument("--pool", type=int, default=300, help="existing chains / leaves (default 300)")
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated operations (default: all)")
    args = parser.parse_args(argv)
    ops = [op for op in args.ops.split(",") if op]
    rep = {"embedded": run_embedded("main", ops, args.rounds, args.slice, 10**9, args.pool)}
    print("\n".join(report.embedded_markdown(rep)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
