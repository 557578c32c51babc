"""The wheel built from the repo carries the Lua scripts and works installed (SPEC 2).

Builds the wheel, installs it with fakeredis[lua] into a fresh venv outside the repo,
and runs operations from a directory outside the repo, so nothing can come from the
source checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import RedisServer

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path
    workdir: Path


def _run(args: list[str | Path], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, REPO], cwd=base)
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=base)
    python = venv / "bin" / "python"
    _run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheels[0], "fakeredis[lua]"],
        cwd=base,
    )
    workdir = base / "elsewhere"
    workdir.mkdir()
    return Installed(wheels[0], python, workdir)


def test_wheel_carries_every_lua_script(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
        packaged = {n.removeprefix("registry/lua/") for n in names if n.startswith("registry/lua/")}
        repo_lua = {p.name for p in (REPO / "lua").glob("*.lua")}
        assert repo_lua, "no Lua files in the repo?"
        assert packaged >= repo_lua
        for name in repo_lua:
            assert whl.read(f"registry/lua/{name}") == (REPO / "lua" / name).read_bytes()
        assert "registry/__init__.py" in names
        assert "registry/py.typed" in names


PROBE = r"""
import json, sys
import fakeredis
import registry
from registry import ThreadRegistry
from registry.scripts import _lua_dir, script

out = {"file": registry.__file__, "lua_dir": str(_lua_dir()), "sources": {}}
for name in ("get_or_create", "extend_chain", "prune_for_response"):
    out["sources"][name] = len(script(name).source)

def exercise(reg):
    root = reg.initialize_root("acme")
    add = reg.extend_chain(root, "calculator.add")
    return {
        "lookup": reg.lookup(add),
        "hops": list(reg.lookup_hops(add)),
        "prune_ok": reg.prune_for_response(add) == ("acme", root),
        "dump_size": len(reg.debug_dump()),
    }

out["fake"] = exercise(ThreadRegistry(fakeredis.FakeRedis(), namespace="wheel"))
if len(sys.argv) > 1:
    real = ThreadRegistry.from_url(sys.argv[1], namespace="wheel-test")
    out["real"] = exercise(real)
    real.clear()
print(json.dumps(out))
"""

EXPECTED = {
    "lookup": "system.acme.calculator.add",
    "hops": ["system", "acme", "calculator.add"],
    "prune_ok": True,
    "dump_size": 2,
}


def test_installed_wheel_works_outside_the_repo(installed: Installed, redis_server: RedisServer) -> None:
    proc = _run([installed.python, "-I", "-c", PROBE, redis_server.url], cwd=installed.workdir, timeout=120)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    site = Path(out["file"]).resolve()
    assert REPO not in site.parents, f"registry imported from the checkout: {site}"
    assert "site-packages" in site.parts
    lua_dir = Path(out["lua_dir"]).resolve()
    assert REPO not in lua_dir.parents and lua_dir.parent == site.parent
    assert all(size > 100 for size in out["sources"].values())
    assert out["fake"] == EXPECTED
    assert out["real"] == EXPECTED
