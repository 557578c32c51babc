"""The Lua scripts: loaded from package data, their SHA1 computed locally.

A script may say `-- @include NAME` on a line of its own; the loader pastes lua/NAME.lua
there, after resolving that file's own includes the same way (depth first). Each file
is pasted once per script: a file that an earlier include already brought in is not
pasted again. A missing file, the same include twice in one file, or a circle of
includes is a ScriptLoadError when the script is first assembled. Scripts are run with
EVALSHA and loaded with SCRIPT LOAD only when the server answers NOSCRIPT (first use,
restart, flush, failover). Comment-only lines of included files are left out of the
assembled source: fakeredis compiles the whole source on every call.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

_INCLUDE = re.compile(r"^-- @include (\S+)[ \t]*$", re.MULTILINE)
_COMMENT_LINE = re.compile(r"^[ \t]*--(?! @include ).*\n", re.MULTILINE)
_NAME = re.compile(r"\w+")


class ScriptLoadError(RuntimeError):
    """A script's includes cannot be resolved (missing, duplicate or circular)."""


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


def assemble(name: str, lua_dir: Path) -> str:
    """The source of lua_dir/<name>.lua with its includes resolved (see the module doc)."""
    done: set[str] = set()

    def expand(current: str, stack: tuple[str, ...]) -> str:
        path = lua_dir / f"{current}.lua"
        if not _NAME.fullmatch(current) or not path.is_file():
            via = " -> ".join(stack) or "(top)"
            raise ScriptLoadError(f"script {current!r} not found in {lua_dir} (included by {via})")
        done.add(current)
        text = path.read_text(encoding="utf-8")
        if stack:  # an included file: its comments are for readers of lua/
            text = _COMMENT_LINE.sub("", text)
        seen: set[str] = set()
        for m in _INCLUDE.finditer(text):
            if m.group(1) in seen:
                raise ScriptLoadError(f"{current}.lua includes {m.group(1)!r} twice")
            seen.add(m.group(1))

        def paste(m: re.Match[str]) -> str:
            child = m.group(1)
            if child in stack or child == current:
                circle = " -> ".join((*stack, current, child))
                raise ScriptLoadError(f"circular include: {circle}")
            if child in done:
                return f"-- (included above: {child})"
            return expand(child, (*stack, current))

        return _INCLUDE.sub(paste, text)

    return expand(name, ())


@cache
def script(name: str) -> Script:
    """The assembled script `name` (lua/<name>.lua with its includes)."""
    source = assemble(name, _lua_dir())
    return Script(name, source, hashlib.sha1(source.encode("utf-8")).hexdigest())
