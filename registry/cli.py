"""Command line: `registry demo` (or `python -m registry demo`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="registry", description="Atomic thread registry on Redis.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="play a short conversation and print the live chains")
    demo.add_argument("--url", help="a Redis URL; default: the embedded in-process backend")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return int(run_demo(args.url))
    return 2


if __name__ == "__main__":
    sys.exit(main())
