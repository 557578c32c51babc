"""What OpenTelemetry instrumentation costs: ops/s of one registry operation, three ways,
in the same run, interleaved (each round runs every mode once, in a shuffled order, so
machine noise hits all alike):

- ``none``: uninstrumented, exactly as when the API is not installed (telemetry.attach
  finds no API and wraps nothing);
- ``api``: the API installed, no SDK (the global proxy providers; the wrappers then
  skip recording until a global provider is set, so this is close to ``none``);
- ``sdk``: the SDK with an in-memory metric reader and an in-memory span exporter.

    python -m benchmarks.otel_cost [--url URL] [--rounds 15] [--ops 2000] [--fake]

Prints median ops/s per mode, its ratio to ``none``, and the cost per operation in µs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from registry import ThreadRegistry, telemetry

from .env import redis_url


def _registry(mode: str, client: Any, providers: dict[str, Any]) -> ThreadRegistry:
    if mode == "none":
        saved, telemetry._api = telemetry._api, False  # what attach() sees without the API
        try:
            return ThreadRegistry(client, namespace="otel-cost")
        finally:
            telemetry._api = saved
    if mode == "api":
        return ThreadRegistry(client, namespace="otel-cost")
    return ThreadRegistry(client, namespace="otel-cost", **providers)


def _sdk() -> tuple[dict[str, Any], Callable[[], None]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    providers = {"meter_provider": MeterProvider(metric_readers=[reader]), "tracer_provider": tracers}

    def drain() -> None:  # between rounds, so the exporter's memory does not grow
        exporter.clear()
        reader.get_metrics_data()

    return providers, drain


def measure(client: Any, rounds: int, ops: int) -> dict[str, list[float]]:
    providers, drain = _sdk()
    regs = {mode: _registry(mode, client, providers) for mode in ("none", "api", "sdk")}
    assert regs["none"]._telemetry is None and regs["api"]._telemetry is not None
    chain = ("bench", "otel", "cost")
    for reg in regs.values():  # warm: script loaded, chain made
        for _ in range(min(200, ops)):
            reg.get_or_create(chain)
    rates: dict[str, list[float]] = {mode: [] for mode in regs}
    for _ in range(rounds):
        order = list(regs)
        random.shuffle(order)
        for mode in order:
            op = regs[mode].get_or_create
            start = time.perf_counter()
            for _ in range(ops):
                op(chain)
            rates[mode].append(ops / (time.perf_counter() - start))
        drain()
    regs["none"].clear()
    return rates


def report(rates: dict[str, list[float]]) -> list[str]:
    base = statistics.median(rates["none"])
    lines = ["mode  ops/s (median)  vs none  cost per op"]
    for mode, values in rates.items():
        rate = statistics.median(values)
        cost = (1 / rate - 1 / base) * 1e6
        lines.append(f"{mode:<5} {rate:>14,.0f}  {rate / base:>7.3f}  {cost:>+8.1f} µs")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.otel_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", help="a Redis URL (default: a throwaway redis-server)")
    parser.add_argument("--fake", action="store_true", help="fakeredis in-process instead of a server")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.fake:
        import fakeredis

        lines = report(measure(fakeredis.FakeRedis(), args.rounds, args.ops))
        print("get_or_create (existing chain) on fakeredis, in-process")
    else:
        import redis

        with redis_url(args.url) as (url, _):
            client = redis.Redis.from_url(url)
            lines = report(measure(client, args.rounds, args.ops))
            print(f"get_or_create (existing chain) on redis-server {client.info('server')['redis_version']}")
    print(f"{args.rounds} rounds x {args.ops} ops per mode, interleaved")
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
