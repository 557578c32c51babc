"""From raw slices to figures: ops/s, latency percentiles, contention anomalies, target ratios."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from . import contenders as C
from .loads import CREATING_OPS, Slice, WorkerResult
from .server_cost import TARGETS as SERVER_TARGETS  # ratio to the no-op script, per operation

WORST_CASE_US = 1000.0  # server µs of any one call the input rules allow
EMBEDDED_TARGETS = {"extend_chain_new": 5000.0, "lookup": 20000.0}  # ops/s, 1 client
BATCH_TARGETS = {"lookup": 10.0}  # batch of 100 vs single calls; writes: 6x
# The no-op script's server µs on an idle core of this kind of machine (probes on an idle machine);
# above it the machine was loaded, which slows the no-op more than longer scripts.
QUIET_NOOP_US = 2.5
MEMORY_BAR = 156.0  # bytes per live thread at 100,000 threads (about today's 155)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def summarize(per_round: dict[int, list[Slice]], ops_per_call: int = 1) -> dict[str, Any]:
    """One (shape, op, contender) cell: per-round throughput summed over clients, median of rounds."""
    rounds = []
    lat: list[float] = []
    calls = retries = 0
    for _, slices in sorted(per_round.items()):
        rounds.append(sum(s.ops * ops_per_call / s.elapsed for s in slices if s.elapsed > 0))
        for s in slices:
            lat.extend(s.latencies)
            calls += s.ops
            retries += s.retries
    lat.sort()
    return {
        "ops_s": round(statistics.median(rounds), 1) if rounds else 0.0,
        "ops_s_rounds": [round(x, 1) for x in rounds],
        "p50_us": round(percentile(lat, 0.50) * 1e6, 1),
        "p99_us": round(percentile(lat, 0.99) * 1e6, 1),
        "calls": calls,
        "ops": calls * ops_per_call,
        "watch_retries": retries,
    }


def table(results: Iterable[WorkerResult]) -> dict[str, dict[str, dict[str, Any]]]:
    """{op: {contender: summary}} over every worker's slices."""
    cells: dict[tuple[str, str], dict[int, list[Slice]]] = defaultdict(lambda: defaultdict(list))
    for wr in results:
        for rnd, op, name, s in wr.slices:
            cells[(op, name)][rnd].append(s)
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (op, name), per_round in cells.items():
        out[op][name] = summarize(per_round)
    return dict(out)


def _id(value: Any) -> Any:
    if isinstance(value, tuple):  # prune_for_response: (target, id)
        return value[1]
    return value


def clients_disagreed(results: Sequence[WorkerResult]) -> dict[str, dict[str, int]]:
    """{contender: {op: chains for which two clients were handed different ids}} (shared chains)."""
    seen: dict[tuple[str, str, int, int], set[Any]] = defaultdict(set)
    for wr in results:
        for rnd, op, name, s in wr.slices:
            if s.results is None or op not in CREATING_OPS:
                continue
            for i, r in enumerate(s.results):
                seen[(name, op, rnd, i)].add(_id(r))
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CREATING_OPS, 0))
    for (name, op, _, _), ids in seen.items():
        out[name][op] += int(len(ids) > 1)
    return dict(out)


def _text(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def storage_anomalies_strings(client: redis.Redis, prefix: str) -> dict[str, int]:
    """Two-string-key layout: chains with two ids, and chains whose two directions disagree."""
    forward: dict[str, str] = {}
    backward: dict[str, str] = {}
    for kind, into in (("c", forward), ("i", backward)):
        keys = [_text(k) for k in client.scan_iter(match=f"{prefix}:{kind}:*", count=2000)]
        for lo in range(0, len(keys), 1000):
            chunk = keys[lo : lo + 1000]
            for key, value in zip(chunk, client.mget(chunk), strict=True):
                if value is not None:
                    into[key[len(prefix) + 3 :]] = _text(value)
    ids_of: dict[str, set[str]] = defaultdict(set)
    for tid, chain in backward.items():
        ids_of[chain].add(tid)
    two_ids = {chain for chain, ids in ids_of.items() if len(ids) > 1}
    disagree = {chain for chain, tid in forward.items() if backward.get(tid) != chain}
    disagree |= {chain for chain, ids in ids_of.items() if any(forward.get(chain) != t for t in ids)}
    return {
        "threads": len(backward),
        "chains_with_two_ids": len(two_ids),
        "chains_with_disagreeing_directions": len(disagree),
        "anomalous_chains": len(two_ids | disagree),
    }


def storage_anomalies_ours(reg: Any) -> dict[str, int]:
    """The library's layout: each chain once in the dump, and the chain resolving to that very id."""
    rows = reg.threads()
    ids_of: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for row in rows:
        ids_of[row.hops].add(row.thread_id)
    two_ids = {hops for hops, ids in ids_of.items() if len(ids) > 1}
    chains = list(ids_of)
    disagree: set[tuple[str, ...]] = set()
    for lo in range(0, len(chains), 1000):
        chunk = chains[lo : lo + 1000]
        b = reg.batch()
        for hops in chunk:
            b.get_or_create(list(hops))  # the chain -> id direction, as every client resolves it
        for hops, tid in zip(chunk, b.execute(), strict=True):
            if ids_of[hops] != {tid}:
                disagree.add(hops)
    return {
        "threads": len(rows),
        "chains_with_two_ids": len(two_ids),
        "chains_with_disagreeing_directions": len(disagree),
        "anomalous_chains": len(two_ids | disagree),
    }


def contention_report(client: redis.Redis, tag: str, results: Sequence[WorkerResult]) -> dict[str, Any]:
    disagreed = clients_disagreed(results)
    retries: dict[str, int] = defaultdict(int)
    for wr in results:
        for _, op, name, s in wr.slices:
            if name == "watch":
                retries[op] += s.retries
    out: dict[str, Any] = {}
    for name in ("ours", "plain", "watch"):
        c = C.make(name, client, tag)
        if name == "ours":
            storage = storage_anomalies_ours(c)
        else:
            assert isinstance(c, C.PlainBaseline | C.WatchBaseline)
            storage = storage_anomalies_strings(client, c.prefix)
        out[name] = {
            "clients_handed_different_ids": disagreed.get(name, dict.fromkeys(CREATING_OPS, 0)),
            **storage,
        }
    out["watch"]["retries"] = dict(retries)
    out["watch"]["retries_total"] = sum(retries.values())
    return out


def paired_ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float:
    """Median over rounds of a/b, each round's two slices having run side by side in time."""
    if not a or not b:
        return 0.0
    pairs = [x / y for x, y in zip(a["ops_s_rounds"], b["ops_s_rounds"], strict=False) if y]
    return round(statistics.median(pairs), 3) if pairs else 0.0


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue, its ratio from this run, PASS or MISS (INFO: printed, no bar)."""
    out: list[dict[str, Any]] = []

    def add(
        name: str, value: float, bar: float, op: str | None = None, higher: bool = True, unit: str = "x"
    ) -> None:
        ok = value >= bar if higher else value <= bar
        out.append(
            {
                "target": name,
                "op": op,  # the single-call operation to profile when missed
                "value": value,
                "bar": bar,
                "cmp": ">=" if higher else "<=",
                "unit": unit,
                "status": "PASS" if ok else "MISS",
            }
        )

    for op, row in report.get("server_cost", {}).get("ops", {}).items():
        bar = SERVER_TARGETS.get(op)
        if bar is not None:
            add(f"server: {op} x the no-op script", row["ratio"], bar, higher=False)
    noop = report.get("server_cost", {}).get("noop_us")
    if noop is not None and noop > QUIET_NOOP_US:
        out.append(
            {
                "target": f"server: the no-op took {noop:g} µs (quiet core: 1.1-1.6): a loaded machine, "
                "so the ratios above read low",
                "value": noop,
                "bar": None,
                "unit": " µs",
                "status": "INFO",
            }
        )
    flat = report.get("server_flat", {}).get("sizes")
    if flat:
        lo, hi = min(flat, key=int), max(flat, key=int)
        for op, growth in report["server_flat"]["growth"].items():
            if op != "noop":
                add(f"server: {op} at {int(hi):,} threads vs {int(lo):,}", growth, 1.3, higher=False)
    for case, us in report.get("server_worst", {}).items():
        add(f"server: {case} at the input limits", us, WORST_CASE_US, higher=False, unit=" µs")
    emb = report.get("embedded", {}).get("ops", {})
    for op, bar in EMBEDDED_TARGETS.items():
        if op in emb:
            add(f"embedded: {op} ops/s", emb[op]["embedded"]["ops_s"], bar, unit="/s")

    single = report["shapes"].get("single", {}).get("ops", {})

    def cell(op: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = single.get(op, {}).get(name)
        return found

    if single:
        for op, bar in (("extend_chain_new", 2.5), ("prune_for_response", 1.6), ("get_or_create_new", 1.6)):
            add(f"{op} vs (b), 1 client", paired_ratio(cell(op, "ours"), cell(op, "plain")), bar, op)
        for op in single:
            add(f"{op} vs floor (d), 1 client", paired_ratio(cell(op, "ours"), cell(op, "floor")), 0.85, op)
    fb = report.get("floor_budget")
    if fb:
        b, skeleton = fb["budget"], fb["shapes"]["write skeleton"]
        for name, value, unit in (
            (f"floor budget: server µs a call may take for {fb['bar']}x of the floor", b["server_us"], " µs"),
            ("floor budget: the same, x the no-op", b["x_noop"], "x"),
            (
                "floor budget: a write skeleton (TIME, HMGET, HSET; no checks) vs floor (d)",
                skeleton["vs_floor"],
                "x",
            ),
            (
                "floor budget: extend_chain_new vs the floor sent on a pooled connection",
                fb["shapes"]["extend_chain_new"]["vs_floor_on_pool"],
                "x",
            ),
        ):
            if value is not None:  # (no budget where a noisy run gave no fit)
                out.append({"target": name, "value": value, "bar": None, "unit": unit, "status": "INFO"})
    batches = report.get("batches", {}).get("ops", {})
    for op, by_variant in batches.items():
        for api in ("sync", "async"):
            big, one = by_variant.get(f"{api}/100"), by_variant.get(f"{api}/single")
            if big and one:
                add(
                    f"{op} {api} batch of 100 vs single calls",
                    paired_ratio(big, one),
                    BATCH_TARGETS.get(op, 6.0),
                )
    mem = report.get("memory", {}).get("ours")
    if mem:
        size = max(mem, key=int)
        add(
            f"memory per live thread at {int(size):,} threads",
            mem[size]["bytes_per_thread"],
            MEMORY_BAR,
            higher=False,
            unit="B",
        )
    cont = report["shapes"].get("same", {}).get("contention")
    if cont:
        ours = cont["ours"]
        bad = ours["anomalous_chains"] + sum(ours["clients_handed_different_ids"].values())
        add(
            "contention: this library's duplicate ids / disagreeing directions",
            float(bad),
            0.0,
            higher=False,
            unit="",
        )
        for name in ("plain", "watch"):
            c = cont[name]
            out.append(
                {
                    "target": f"contention: {C.LABELS[name]}",
                    "value": c["anomalous_chains"],
                    "bar": None,
                    "unit": "",
                    "status": "INFO",
                    "detail": {k: v for k, v in c.items() if k != "threads"},
                }
            )
    return out
