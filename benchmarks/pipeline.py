"""What opaque, shared routing costs a bus: the pipeline with the registry, and without.

``python -m benchmarks.pipeline [--url URL] [--requests N] [--rounds R] [--workers 1,2,4]``

For each worker count it runs the reference pipeline (``thread-registry pipeline``,
registry.pipeline) twice per round: routing through the registry (messages carry a
thread id) and the baseline (messages carry their whole chain; no registry call at all),
alternating, so machine noise hits both alike. It prints a Markdown table of the median
over the rounds: end-to-end stream messages handled per second, request-to-answer
p50/p99, and registry operations per request. Without ``--url`` it starts a throwaway
redis-server (never port 6379).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import uuid
from typing import Any

from registry.pipeline import Settings, run_pipeline

from .env import redis_url


def measure(url: str, workers: int, requests: int, routing: str, window: int) -> dict[str, Any]:
    settings = Settings(namespace=f"bench-pl-{uuid.uuid4().hex[:6]}", url=url, routing=routing)
    summary = run_pipeline(settings, workers=workers, requests=requests, window=window, timeout=300)
    if summary["lost"] or summary["misrouted"]:
        raise RuntimeError(f"the pipeline lost or misrouted answers: {summary}")
    return summary


def run_rows(
    url: str, counts: list[int], requests: int, rounds: int, window: int, say: Any = None
) -> list[dict[str, Any]]:
    """Each worker count with and without the registry, alternating, `rounds` times: one
    row per (workers, routing) with the medians."""
    raw: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for round_no in range(rounds):
        for workers in counts:
            for routing in ("registry", "chain") if round_no % 2 == 0 else ("chain", "registry"):
                s = measure(url, workers, requests, routing, window)
                raw.setdefault((workers, routing), []).append(s)
                line = (
                    f"round {round_no + 1} workers={workers} {routing}: {s['msgs_per_s']:,.0f} msgs/s "
                    f"p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms"
                )
                (say or (lambda m: print(m, file=sys.stderr)))(line)
    rows = []
    for (workers, routing), runs in sorted(raw.items(), key=lambda kv: (kv[0][0], kv[0][1] != "registry")):
        rows.append(
            {
                "workers": workers,
                "routing": routing,
                "msgs_per_s": statistics.median(r["msgs_per_s"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "ops_per_request": statistics.median(r["registry_ops"] / r["requests"] for r in runs),
                "runs": runs,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workers | routing | msgs/s | p50 ms | p99 ms | registry ops / request | msgs/s vs baseline |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    by = {(r["workers"], r["routing"]): r for r in rows}
    for r in rows:
        base = by.get((r["workers"], "chain"))
        ratio = f"{r['msgs_per_s'] / base['msgs_per_s']:.2f}x" if base and r["routing"] == "registry" else ""
        label = "registry (thread id)" if r["routing"] == "registry" else "baseline (chain in message)"
        lines.append(
            f"| {r['workers']} | {label} | {r['msgs_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['ops_per_request']:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pipeline", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", help="a Redis server to use (default: start a throwaway one)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per run (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration (default 3)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    parser.add_argument("--window", type=int, default=200, help="requests in flight (default 200)")
    parser.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    with redis_url(args.url) as (url, _owned):
        rows = run_rows(url, counts, args.requests, args.rounds, args.window)
    print(
        f"Pipeline, {args.requests} requests per run, window {args.window}, median of {args.rounds} rounds "
        "(msgs/s: stream messages handled per second, end to end):\n"
    )
    print(table(rows))
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
