"""Command line: `registry demo` (or `python -m registry demo`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="registry", description="Atomic thread registry on Redis.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="play a short conversation and print the live chains")
    demo.add_argument("--url", help="a Redis URL (redis://, rediss://, unix://); default: embedded backend")
    demo.add_argument("--async", dest="use_async", action="store_true", help="use AsyncThreadRegistry")
    demo.add_argument(
        "--namespace", help="namespace to play in (default: a fresh demo-xxxxxx, cleared after)"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.url, args.use_async, args.namespace)
    return 2


if __name__ == "__main__":
    sys.exit(main())
