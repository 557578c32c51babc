"""Command line: `registry demo` (the main job), and operator commands on a real server.

registry demo [--url URL] [--async]          play a conversation, print the live chains
registry threads --url URL --namespace NS    what threads are alive (tree, or --json)
registry gc --url URL --namespace NS         reclaim expired mappings now
registry pipeline --url URL [--chaos]        the reference pipeline on Redis Streams
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .default import URL_ENV


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="registry", description="Atomic thread registry on Redis.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="play a short conversation and print the live chains")
    demo.add_argument("--url", help="a Redis URL (redis://, rediss://, unix://); default: embedded backend")
    demo.add_argument("--async", dest="use_async", action="store_true", help="use AsyncThreadRegistry")
    demo.add_argument(
        "--namespace", help="namespace to play in (default: a fresh demo-xxxxxx, cleared after)"
    )

    from .pipeline import add_arguments as pipeline_arguments

    pipeline_arguments(sub.add_parser("pipeline", help="run the reference pipeline on Redis Streams"))

    for name, text in (
        ("threads", "list the live threads of a namespace"),
        ("gc", "reclaim expired mappings of a namespace now"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--url", default=os.environ.get(URL_ENV), help=f"a Redis URL (default: ${URL_ENV})")
        cmd.add_argument("--namespace", required=True)
        cmd.add_argument("--cluster", action="store_true", help="the URL names a Redis Cluster node")
        if name == "threads":
            cmd.add_argument("--json", action="store_true", help="one JSON object per thread")
        else:
            cmd.add_argument(
                "--limit", type=int, default=100_000, help="stop after this many (default 100000)"
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:  # `registry threads | head`: the reader is gone, not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown quiet
        return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "pipeline":
        from .pipeline import run as run_pipeline

        return run_pipeline(args)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.url, args.use_async, args.namespace)

    from .client import ThreadRegistry
    from .demo import render_tree

    if not args.url:
        print(f"registry {args.command}: give --url (or set ${URL_ENV})", file=sys.stderr)
        return 2
    with ThreadRegistry.from_url(args.url, namespace=args.namespace, cluster=args.cluster) as reg:
        if args.command == "gc":
            print(f"reclaimed {reg.gc(limit=args.limit)} expired mappings in namespace {args.namespace!r}")
            return 0
        rows = reg.threads()
        if args.json:
            for row in rows:
                print(json.dumps({"id": row.thread_id, "hops": row.hops, "deadline_ms": row.deadline_ms}))
        else:
            print(f"{len(rows)} live threads in namespace {args.namespace!r}")
            for line in render_tree(rows):
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
