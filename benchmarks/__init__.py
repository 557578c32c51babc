"""Benchmark suite: this library against plain-command, WATCH/MULTI and no-op EVALSHA baselines.

Run it with ``python -m benchmarks run [--quick] [--url URL] [--out DIR]``; see README.md.
"""
