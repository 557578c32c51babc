"""Instructions the server executes per call of each operation (callgrind): a count that
does not move with the machine's load, beside the µs that do.

On a shared 2-core VM a no-op script's server µs moves 3-10 µs from one run to the next,
and every ratio to it moves too. The number of instructions redis-server executes inside
``EVALSHA`` does not: the same binary, scripts and inputs give the same count, whatever
else the machine is doing. This starts a throwaway ``redis-server`` under
``valgrind --tool=callgrind``, counting inside ``evalShaCommand`` only, and for each
operation (the shapes of ``benchmarks.server_cost``, in a namespace of 1,000 threads)
zeroes the counters, makes `calls` calls and reads the total. With ``--ref REV`` it
measures the scripts of ``lua/`` at that git revision too, in the same server and
namespace shapes (the Python side is this checkout's): a same-code comparison for a
change to the scripts.

    python -m benchmarks.instructions [--calls N] [--ref REV] [--fill N] [OP ...]

Two things still move a count a little. The data: each variant's namespace has its own
random salt and ids, so fields land in other places of a hash (a few percent, as on
`lookup`, whose script is the same). And time: under callgrind the server runs tens of
times slower, so fewer touches of an existing thread fall within the headroom (the
deadline rule, docs/design.md "Expiry") than at full speed: each operation first
touches every chain of the pool, so that the calls counted (300 take about 0.6 s) touch
chains touched well within the headroom.

Needs valgrind (``apt-get install valgrind``) and a redis-server. About 2 s per operation
and variant at the default 300 calls.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

import registry.operations
from registry.scripts import Script, assemble, script

from .server_cost import OPS, POOL, Fixture

ROOT = Path(__file__).resolve().parent.parent
FILL = 1000  # threads in each namespace before the counts


@contextmanager
def callgrind_server(binary: str) -> Iterator[tuple[redis.Redis, Callable[[], int]]]:
    """A redis-server under callgrind; yields a client and `take()`, which returns the
    instructions counted inside EVALSHA since the last take() and zeroes the count."""
    from tests.servers import free_port

    workdir = Path(tempfile.mkdtemp(prefix="threadreg-cg-"))
    out = workdir / "cg.out"
    port = free_port()
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--toggle-collect=evalShaCommand",
            binary,
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(workdir)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} under callgrind did not start") from None
                time.sleep(0.2)
        pid = str(client.info("server")["process_id"])
        dumps = [0]

        def control(flag: str) -> None:
            subprocess.run(["callgrind_control", flag, pid], check=True, capture_output=True)

        def take() -> int:
            control("-d")
            dumps[0] += 1
            dump = Path(f"{out}.{dumps[0]}")
            for _ in range(100):  # the dump is written by the server, asynchronously
                if dump.exists() and "totals:" in dump.read_text():
                    break
                time.sleep(0.05)
            totals = [line for line in dump.read_text().splitlines() if line.startswith("totals:")]
            control("-z")
            return int(totals[0].split()[1])

        control("-z")
        yield client, take
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


def scripts_at(rev: str) -> Callable[[str], Script]:
    """The scripts of lua/ at git revision `rev`, assembled by this checkout's loader."""
    lua = Path(tempfile.mkdtemp(prefix="threadreg-lua-"))
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", rev, "lua/"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    for name in names:
        text = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True, capture_output=True)
        (lua / Path(name).name).write_bytes(text.stdout)
    made: dict[str, Script] = {}

    def get(name: str) -> Script:
        if name not in made:
            source = assemble(name, lua)
            made[name] = Script(name, source, hashlib.sha1(source.encode("utf-8")).hexdigest())
        return made[name]

    return get


@contextmanager
def scripts_from(get: Callable[[str], Script]) -> Iterator[None]:
    """Operations built inside this block use `get` for their scripts."""
    saved = registry.operations.script
    registry.operations.script = get  # type: ignore[assignment]
    try:
        yield
    finally:
        registry.operations.script = saved  # type: ignore[assignment]


def measure(
    binary: str,
    ops: Sequence[str],
    calls: int,
    variants: dict[str, Callable[[str], Script]],
    fill: int = FILL,
) -> dict[str, dict[str, int]]:
    """{variant: {op: instructions per call}}, "noop" included."""
    out: dict[str, dict[str, int]] = {v: {} for v in variants}
    with callgrind_server(binary) as (client, take):
        for variant, get in variants.items():
            with scripts_from(get):
                fx = Fixture(client, f"cg-{variant}")
                # A namespace in use: past 128 fields a hash is a hash table, not the
                # listpack (searched field by field) a namespace of a few threads is.
                filler = fx.caller("get_or_create_new")
                for i in range(fill):
                    filler(i)
                for op in ("noop", *ops):
                    fn = fx.caller(op)
                    # Loads the script and warms the code paths; and touches every chain
                    # of the pool just before the count, so that (at callgrind's pace,
                    # about 2 ms a call) the touches counted fall within the headroom as
                    # they do at full speed, instead of rewriting a deadline left from
                    # the fill seconds earlier.
                    for i in range(POOL):
                        fn(calls + i)
                    take()
                    for i in range(calls):
                        fn(i)
                    out[variant][op] = take() // calls
    return out


def table(result: dict[str, dict[str, int]]) -> str:
    variants = list(result)
    head = "| operation | " + " | ".join(f"{v} instructions (x no-op)" for v in variants)
    lines = [head + (" | this / ref |" if len(variants) == 2 else " |")]
    lines.append("|---|" + "---:|" * (len(variants) + (len(variants) == 2)))
    for op in result[variants[0]]:
        cells = [f"{result[v][op]:,} ({result[v][op] / result[v]['noop']:.1f}x)" for v in variants]
        extra = [f"{result[variants[0]][op] / result[variants[1]][op]:.3f}"] if len(variants) == 2 else []
        lines.append(f"| {op} | " + " | ".join([*cells, *extra]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("ops", nargs="*", help=f"of {', '.join(OPS)} (default: all)")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--ref", help="also measure lua/ at this git revision")
    parser.add_argument(
        "--fill",
        type=int,
        default=FILL,
        help=f"threads made before the counts (default {FILL}); a small namespace, e.g. "
        "--fill 50 --calls 60 extend_chain_new register_thread, stays under 512 entries",
    )
    parser.add_argument("--server", default=shutil.which("redis-server") or "redis-server")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            print(f"{tool} is not installed (apt-get install valgrind)", file=sys.stderr)
            return 2
    unknown = [op for op in args.ops if op not in OPS]
    if unknown:
        print(f"unknown operation(s) {', '.join(unknown)}: choose from {', '.join(OPS)}", file=sys.stderr)
        return 2
    variants: dict[str, Callable[[str], Script]] = {"this": script}
    if args.ref:
        variants["ref"] = scripts_at(args.ref)
    result = measure(args.server, args.ops or OPS, args.calls, variants, args.fill)
    print(
        f"instructions per call inside EVALSHA, {args.server}, {args.calls} calls each, "
        f"{args.fill} threads made first"
    )
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
