"""The Lua scripts: loaded from package data, their SHA1 computed locally.

Each operation script may say `-- @include NAME` on a line of its own; the loader
pastes lua/NAME.lua there. Scripts are run with EVALSHA and loaded with SCRIPT LOAD
only when the server answers NOSCRIPT (first use, restart, flush, failover).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

_INCLUDE = re.compile(r"^-- @include (\w+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str


def _lua_dir() -> Path:
    # In a wheel the files ship as registry/lua; in a source checkout they sit at ../lua.
    packaged = resources.files("registry") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "lua"


def _read(name: str) -> str:
    return (_lua_dir() / f"{name}.lua").read_text(encoding="utf-8")


@cache
def script(name: str) -> Script:
    """The assembled script `name` (lua/<name>.lua with its includes)."""
    source = _INCLUDE.sub(lambda m: _read(m.group(1)), _read(name))
    return Script(name, source, hashlib.sha1(source.encode("utf-8")).hexdigest())
