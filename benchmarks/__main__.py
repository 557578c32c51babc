"""python -m benchmarks run [--quick] [--url URL] [--out DIR] | profile [OP] [--calls N] [--url URL]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import report, server_cost
from .runner import MODES, run

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the benchmarks and write latest.json / latest.md / latest.png")
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode", help="about 2-3 minutes")
    mode.add_argument(
        "--full", action="store_const", const="full", dest="mode", help="the default, ~10 minutes"
    )
    mode.add_argument(
        "--smoke", action="store_const", const="smoke", dest="mode", help="seconds; proves it works"
    )
    r.add_argument("--url", help="use this Redis instead of starting a throwaway redis-server")
    r.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    p = sub.add_parser(
        "profile",
        help="where each operation's server µs go (commands its script runs, and Lua); with OP, "
        "also a pyinstrument call tree of the client side",
    )
    p.add_argument("op", nargs="?", help=f"one of {', '.join(server_cost.OPS)} (default: all)")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--url")
    args = parser.parse_args(argv)

    if args.command == "profile":
        from .env import make_client, redis_url
        from .profiling import pyinstrument_text, server_breakdown, server_breakdown_text

        if args.op is not None and args.op not in server_cost.OPS:
            parser.error(f"unknown operation {args.op!r}; one of {', '.join(server_cost.OPS)}")
        ops = [args.op] if args.op else list(server_cost.OPS)
        with redis_url(args.url) as (url, _):
            client = make_client(url)
            print(server_breakdown_text(server_breakdown(client, "cli", ops, args.calls)))
            if args.op:
                print(f"\nclient side, pyinstrument, {args.calls} calls of {args.op}:")
                print(pyinstrument_text(client, "cli", args.op, args.calls))
            client.close()
        return 0

    rep = run(MODES[args.mode or "full"], url=args.url, out_dir=args.out)
    print(report.markdown(rep))
    print(report.console(rep))
    print(f"\nwritten: {args.out}/latest.json, latest.md, latest.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
