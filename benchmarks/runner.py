"""One benchmark run: every phase in order, into one report dict."""

from __future__ import annotations

import secrets
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import (
    analysis,
    batches,
    embedded,
    flatness,
    floor_budget,
    loads,
    matrix,
    memory,
    pipeline,
    profiling,
    report,
    server_cost,
)
from . import contenders as C
from .env import machine_info, make_client, redis_url


@dataclass(frozen=True)
class Config:
    mode: str
    rounds: int  # interleaved rounds per phase
    slice_s: float  # seconds per (op, contender) slice
    max_ops: int  # cap of calls per slice (smoke mode)
    procs: int  # client processes of the multi-process shapes
    pool: int  # existing chains / leaves made before the slices, per fixture
    memory_sizes: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    profile_calls: int
    server_calls: int  # calls per (operation, round) of the server-cost tables
    server_rounds: int
    flat_sizes: tuple[int, ...]  # namespace sizes (threads) of the flat-with-size check
    embedded_pool: int  # fixture size on the embedded backend (slow to fill)
    pipeline: tuple[tuple[int, ...], int, int]  # worker counts, requests per run, rounds


MODES = {
    "quick": Config(
        "quick",
        5,
        0.15,
        10**9,
        8,
        300,
        (10_000, 100_000),
        (1, 10, 100),
        2000,
        300,
        5,
        (1000, 200_000),
        100,
        ((1, 2, 4), 600, 1),
    ),
    "full": Config(
        "full",
        10,
        0.3,
        10**9,
        8,
        1000,
        (10_000, 100_000),
        (1, 10, 100),
        5000,
        1000,
        9,
        (1000, 200_000),
        300,
        ((1, 2, 4), 2000, 3),
    ),
    "smoke": Config(
        "smoke", 1, 0.02, 15, 2, 8, (200, 1000), (1, 10, 100), 30, 20, 2, (200, 1000), 8, ((1,), 40, 1)
    ),
}

SHAPES = {
    "single": "1 client",
    "distinct": "{procs} client processes, distinct chains",
    "same": "{procs} client processes, the same chains (contention)",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _plan(cfg: Config, url: str, tag: str, worker: int, shared: bool, **kw: Any) -> loads.WorkerPlan:
    return loads.WorkerPlan(
        url=url,
        tags=dict.fromkeys(C.NAMES, tag),
        names=C.NAMES,
        ops=loads.OPS,
        rounds=cfg.rounds,
        slice_s=cfg.slice_s,
        max_ops=cfg.max_ops,
        pool=cfg.pool,
        worker=worker,
        shared_chains=shared,
        **kw,
    )


def run(cfg: Config, url: str | None = None, out_dir: Path | None = None) -> dict[str, Any]:
    run_id = secrets.token_hex(3)
    started = time.perf_counter()
    with redis_url(url) as (server_url, owned):
        client = make_client(server_url)
        rep: dict[str, Any] = {
            "meta": {
                **machine_info(client),
                "mode": cfg.mode,
                "config": asdict(cfg),
                "server": "own throwaway redis-server" if owned else "given --url",
                "contenders": C.LABELS,
                "run_id": run_id,
            },
            "shapes": {},
        }

        def factory() -> Any:
            return make_client(server_url)

        calls, rounds = cfg.server_calls, cfg.server_rounds
        log(f"server cost: {calls} calls x {rounds} rounds per operation, beside the no-op")
        rep["server_cost"] = server_cost.server_cost(
            factory, calls=calls, rounds=rounds, namespace=f"server-cost-{run_id}"
        )
        log(f"server cost flat with size: {', '.join(map(str, cfg.flat_sizes))} threads")
        rep["server_flat"] = flatness.flat_with_size(
            # (At least 3 rounds: the median of two is their mean, and one noisy round of
            # a loaded machine then decides; 2 rounds read 1.2-1.4x for unchanged scripts.)
            factory,
            run_id,
            cfg.flat_sizes,
            calls=min(calls, 500),
            rounds=max(3, rounds // 2),
        )
        log("server cost at the input limits")
        rep["server_worst"] = server_cost.worst_case(factory)
        log("server cost inner commands (per operation)")
        rep["server_profile"] = profiling.server_breakdown(client, run_id, server_cost.OPS, calls)
        log("server matrix: " + ", ".join(label for label, _, _ in matrix.MATRIX))
        rep["server_matrix"] = matrix.run_matrix(run_id, min(calls, 500), rounds)
        log("embedded default backend beside a dict registry")
        rep["embedded"] = embedded.run_embedded(
            run_id, server_cost.OPS, max(1, cfg.rounds // 2), cfg.slice_s, cfg.max_ops, cfg.embedded_pool
        )

        log(f"memory: {', '.join(map(str, cfg.memory_sizes))} threads")
        rep["memory"] = memory.measure(client, run_id, cfg.memory_sizes)

        tag = f"single-{run_id}"
        log("shape single: 1 client, in this process")
        single = loads.run_schedule(_plan(cfg, server_url, tag, 0, False))
        rep["shapes"]["single"] = {"label": SHAPES["single"], "clients": 1, "ops": analysis.table([single])}
        log("floor budget: the server time 0.85x of the floor leaves a call, beside a write skeleton")
        rep["floor_budget"] = floor_budget.measure(
            server_url, cfg.rounds, min(cfg.profile_calls, 1500), namespace=f"floor-budget-{run_id}"
        )

        tag = f"distinct-{run_id}"
        log(f"shape distinct: {cfg.procs} processes")
        plans = [_plan(cfg, server_url, tag, w, False) for w in range(cfg.procs)]
        res = loads.run_processes(plans)
        rep["shapes"]["distinct"] = {
            "label": SHAPES["distinct"].format(procs=cfg.procs),
            "clients": cfg.procs,
            "ops": analysis.table(res),
        }

        tag = f"same-{run_id}"
        log(f"shape same: {cfg.procs} processes on the same chains")
        fixtures = {n: loads.build_fixture(C.make(n, client, tag), cfg.pool, "") for n in C.NAMES}
        plans = [_plan(cfg, server_url, tag, w, True, fixtures=fixtures) for w in range(cfg.procs)]
        res = loads.run_processes(plans)
        rep["shapes"]["same"] = {
            "label": SHAPES["same"].format(procs=cfg.procs),
            "clients": cfg.procs,
            "ops": analysis.table(res),
            "contention": analysis.contention_report(client, tag, res),
        }
        del res

        why_not = batches.available()
        if why_not:
            log(f"batches skipped: {why_not}")
            rep["batches"] = {"skipped": why_not}
        else:
            log("batches: sizes " + ", ".join(map(str, cfg.batch_sizes)) + ", sync and async")
            raw = batches.run_batches(
                server_url, f"batch-{run_id}", cfg.rounds, cfg.slice_s, cfg.max_ops, cfg.pool, cfg.batch_sizes
            )
            cells: dict[tuple[str, str], dict[int, list[loads.Slice]]] = defaultdict(
                lambda: defaultdict(list)
            )
            per_call: dict[tuple[str, str], int] = {}
            for rnd, op, api, size, s, k in raw:
                cells[(op, f"{api}/{size}")][rnd].append(s)
                per_call[(op, f"{api}/{size}")] = k
            table: dict[str, dict[str, Any]] = defaultdict(dict)
            for (op, variant), per_round in cells.items():
                table[op][variant] = analysis.summarize(per_round, per_call[(op, variant)])
            rep["batches"] = {
                "variants": [f"{a}/{s}" for a, s in batches.variants(cfg.batch_sizes)],
                "ops": dict(table),
            }

        rep["targets"] = analysis.targets(rep)

        log("profile: per-call time split")
        rep["profile"] = {"breakdown": profiling.breakdown(client, run_id, loads.OPS, cfg.profile_calls)}
        missed_ops = sorted({t["op"] for t in rep["targets"] if t["status"] == "MISS" and t.get("op")})
        rep["profile"]["cprofile"] = {
            op: profiling.cprofile(client, f"{run_id}-{op}", op, cfg.profile_calls) for op in missed_ops
        }

        counts, requests, rounds = cfg.pipeline
        log(f"pipeline: {', '.join(map(str, counts))} workers, {requests} requests, beside no registry")
        rep["pipeline"] = {
            "requests": requests,
            "rounds": rounds,
            "window": 200,
            "rows": [
                {k: v for k, v in row.items() if k != "runs"}
                for row in pipeline.run_rows(server_url, list(counts), requests, rounds, 200, log)
            ],
        }

        if not owned:
            _cleanup(client, run_id)
        client.close()
    rep["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
    if out_dir is not None:
        report.write_all(rep, out_dir)
    return rep


def _cleanup(client: Any, run_id: str) -> None:
    """On a server we did not start, remove every key this run made (and only those)."""
    for shape in ("single", "distinct", "same", "batch"):
        tag = f"{shape}-{run_id}"
        reg: Any = C.make("ours", client, tag)
        reg.clear()
        for name in ("plain", "watch"):
            c: Any = C.make(name, client, tag)
            memory.drop_prefix(client, c.prefix)
